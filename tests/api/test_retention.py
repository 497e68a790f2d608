"""Retention through the real processes: an operator sets a tenant's retention over the API,
``processgpt retention`` deletes what expired, and the streams of deleted work answer 404."""

from __future__ import annotations

import uuid

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.db.retention import RetentionRepository
from processgpt.domain.roles import Role
from tests.api.conftest import Api
from tests.api.test_tasks_api import error_code, wait_status
from tests.support import cli


async def _age(db: Database, task_id: str, days: int) -> None:
    """Make a finished task (and its instance, if any) look ``days`` old."""
    await db.execute(
        """UPDATE todolist SET created_at = created_at - make_interval(days => $2),
                               finished_at = finished_at - make_interval(days => $2)
           WHERE id = $1""",
        uuid.UUID(task_id),
        days,
    )
    await db.execute(
        """UPDATE bpm_proc_inst SET start_date = start_date - make_interval(days => $2),
                                    end_date = end_date - make_interval(days => $2)
           WHERE proc_inst_id = (SELECT proc_inst_id FROM todolist WHERE id = $1)""",
        uuid.UUID(task_id),
        days,
    )


async def test_the_streams_of_deleted_work_answer_404(api: Api, db: Database) -> None:
    operator = (await ApiKeyRepository(db).create("ops", "root", Role.OPERATOR)).key
    async with api.client(operator) as ops:
        bad = await ops.put("/v1/tenants/acme", json={"retention_days": -1})
        assert bad.status_code == 422 and error_code(bad) == "invalid_input"
        set_ = await ops.put("/v1/tenants/acme", json={"retention_days": 2})
        assert set_.status_code == 200 and set_.json()["retention_days"] == 2
        kept = await ops.put("/v1/tenants/acme", json={"max_pending_tasks": 50})
        assert kept.json()["retention_days"] == 2  # absent: unchanged
    async with api.client(api.key_a) as admin:  # a tenant's own key cannot change it
        refused = await admin.put("/v1/tenants/acme", json={"retention_days": 0})
        assert refused.status_code == 403

    async with api.client() as client:
        old = (await client.post("/v1/tasks", json={"agent_orch": "demo", "query": "old"})).json()
        fresh = (await client.post("/v1/tasks", json={"agent_orch": "demo", "query": "new"})).json()
        started = await client.post(
            "/v1/processes", json={"name": "p", "task": {"agent_orch": "demo", "query": "p"}}
        )
        assert started.status_code == 201, started.text
        proc_id = started.json()["process"]["proc_inst_id"]
        proc_task = started.json()["tasks"][0]["id"]
        for task_id in (old["id"], fresh["id"], proc_task):
            await wait_status(client, task_id, "DONE")
        # the globex tenant's old task is out of acme's retention
        async with api.client(api.key_b) as other:
            globex = (await other.post("/v1/tasks", json={"agent_orch": "demo"})).json()
            await wait_status(other, globex["id"], "DONE")
        for task_id in (old["id"], proc_task, globex["id"]):
            await _age(db, task_id, 3)
        before = await client.get(f"/v1/tasks/{old['id']}/stream")
        assert before.status_code == 200

        preview = await cli(db.dsn, "retention", "--dry-run")
        assert preview.returncode == 0, preview.stderr
        assert "acme: " in preview.stdout and "2 task(s)" in preview.stdout, preview.stdout
        assert "1 process instance(s), 0 file(s) would be deleted" in preview.stdout, preview.stdout
        assert "globex" not in preview.stdout  # the deployment's default keeps forever
        assert (await client.get(f"/v1/tasks/{old['id']}")).status_code == 200

        run = await cli(db.dsn, "retention")
        assert run.returncode == 0, run.stderr
        assert "acme: deleted 2 task(s)" in run.stdout, run.stdout

        for path in (
            f"/v1/tasks/{old['id']}",
            f"/v1/tasks/{old['id']}/stream",
            f"/v1/tasks/{old['id']}/events",
            f"/v1/tasks/{proc_task}/stream",
            f"/v1/processes/{proc_id}",
            f"/v1/processes/{proc_id}/stream",
            f"/v1/processes/{proc_id}/history",
        ):
            resume = "h:1" if path.startswith("/v1/processes") else "1"
            gone = await client.get(path, headers={"Last-Event-ID": resume})
            assert gone.status_code == 404, (path, gone.status_code, gone.text)
            assert error_code(gone).endswith("_not_found"), gone.text
        still = await client.get(f"/v1/tasks/{fresh['id']}/stream")
        assert still.status_code == 200 and "[DONE]" in still.text
    async with api.client(api.key_b) as other:
        assert (await other.get(f"/v1/tasks/{globex['id']}")).status_code == 200


async def test_the_command_says_when_another_pass_is_running(db: Database) -> None:
    async with RetentionRepository(db).exclusive() as held:
        assert held is not None
        busy = await cli(db.dsn, "retention")
    assert busy.returncode == 2
    assert "error: retention_running:" in busy.stderr, busy.stderr
    idle = await cli(db.dsn, "retention", "--dry-run")
    assert idle.returncode == 0 and "nothing expires" in idle.stdout, idle.stdout

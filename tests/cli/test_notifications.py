"""``processgpt webhooks`` and ``processgpt notifications`` over a real API process."""

from __future__ import annotations

from pathlib import Path

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.cli.conftest import RunningApi, run_cli


async def test_webhooks_and_notifications_commands(
    db: Database, api: RunningApi, data_dir: Path
) -> None:
    admin = RunningApi(api.url, (await ApiKeyRepository(db).create("default", role=Role.ADMIN)).key)

    async def cli(*args: str) -> tuple[int, str, str]:
        done = await run_cli(*args, *admin.flags, data_dir=data_dir)
        return done.returncode, done.stdout, done.stderr

    code, out, err = await cli(
        "webhooks", "create", "https://hooks.example.com/x", "--event", "task.failed"
    )
    assert code == 0, err
    line = out.splitlines()[0]
    endpoint_id = line.split()[0]
    assert "secret=whsec_" in line and "events=task.failed" in line
    secret = line.split("secret=")[1].split()[0]
    code, out, err = await cli("webhooks", "list")
    assert code == 0 and endpoint_id in out and secret not in out, err
    code, out, _err = await cli("webhooks", "disable", endpoint_id)
    assert code == 0 and " off " in out
    code, out, _err = await cli("webhooks", "deliveries", endpoint_id)
    assert code == 0 and out == ""
    code, _out, err = await cli("webhooks", "create", "http://127.0.0.1/x")
    assert code == 2 and err.startswith("error: url_not_allowed:")
    code, _out, _err = await cli("webhooks", "delete", endpoint_id)
    assert code == 0
    code, _out, err = await cli("webhooks", "delete", endpoint_id)
    assert code == 2 and err.startswith("error: webhook_not_found:")

    await db.execute(
        "INSERT INTO todolist (tenant_id, agent_orch, status, user_id, activity_name) "
        "VALUES ('default', 'human', 'TODO', 'alice', 'Approve')"
    )
    code, out, err = await cli("notifications", "--user", "alice")
    assert code == 0, err
    assert "TASK_ASSIGNED" in out and "New work item: Approve" in out and " * " in out
    code, out, _err = await cli("notifications", "--read-all")
    assert code == 0 and "marked 1 notification(s) read" in out
    code, out, _err = await cli("notifications", "--unread")
    assert code == 0 and out == ""

"""The worker's batch write against a real database: fenced, and safe to run twice."""

from __future__ import annotations

import uuid

from processgpt.db.database import Database
from processgpt.db.secret_box import SecretBox, new_key
from processgpt.db.tenants import TenantRepository
from processgpt.db.webhooks import WebhookRepository
from processgpt.db.worker_queries import EventRow, TaskWrite, WorkerQueries
from processgpt.domain.task import TaskStatus


async def _claim_one(queries: WorkerQueries, db: Database) -> tuple[uuid.UUID, int]:
    await db.execute("INSERT INTO todolist (tenant_id, agent_orch) VALUES ('default', 'demo')")
    [row] = await queries.claim(["demo"], 1, "w", 30.0)
    return row.id, row.fence


def _event(seq: int) -> EventRow:
    return EventRow(seq, "job", "task_working", None, None, f'"e{seq}"')


async def _log(db: Database, task_id: uuid.UUID) -> list[tuple[int, str]]:
    rows = await db.fetch("SELECT seq, data FROM events WHERE todo_id = $1 ORDER BY seq", task_id)
    return [(r["seq"], r["data"]) for r in rows]


async def test_a_batch_run_twice_writes_its_events_once(db: Database) -> None:
    """A batch is retried when its commit's outcome is unknown (the connection dropped): the
    second run must be accepted and add nothing, whether the batch ended the task or not."""
    queries = WorkerQueries(db)
    task_id, fence = await _claim_one(queries, db)

    middle = [TaskWrite(task_id, fence, events=[_event(1), _event(2)])]
    assert await queries.apply_batch(middle) == {task_id}
    assert await queries.apply_batch(middle) == {task_id}
    assert await _log(db, task_id) == [(1, "e1"), (2, "e2")]

    last = [TaskWrite(task_id, fence, events=[_event(3)], status=TaskStatus.DONE, output_json="1")]
    assert await queries.apply_batch(last) == {task_id}
    assert await queries.apply_batch(last) == {task_id}
    assert await _log(db, task_id) == [(1, "e1"), (2, "e2"), (3, "e3")]
    row = await db.fetchrow("SELECT status, last_seq, output FROM todolist WHERE id = $1", task_id)
    assert row is not None and (row["status"], row["last_seq"], row["output"]) == ("DONE", 3, 1)


async def test_a_batch_under_an_old_fence_writes_nothing(db: Database) -> None:
    queries = WorkerQueries(db)
    task_id, fence = await _claim_one(queries, db)
    stale = [TaskWrite(task_id, fence - 1, events=[_event(1)], status=TaskStatus.DONE)]
    assert await queries.apply_batch(stale) == set()
    assert await _log(db, task_id) == []
    assert await db.fetchval("SELECT status FROM todolist WHERE id = $1", task_id) == "IN_PROGRESS"


async def test_a_claimed_task_carries_its_row_and_context(db: Database) -> None:
    """The typed fields, and the row and context an executor sees, as the claim read them."""
    proc = await db.fetchval(
        "INSERT INTO bpm_proc_inst (tenant_id, proc_def_id) VALUES ('default', 'p')"
        " RETURNING proc_inst_id"
    )
    await db.execute(
        "INSERT INTO form_def (tenant_id, id, html) VALUES ('default', 'order_form', '<form/>')"
    )
    await db.execute(
        "INSERT INTO todolist (tenant_id, agent_orch, query, max_attempts, proc_inst_id, tool,"
        " last_seq) VALUES ('default', 'demo', 'hello', 4, $1, 'formHandler:order_form', 7)",
        proc,
    )
    [task] = await WorkerQueries(db).claim(["demo"], 1, "w", 30.0)
    stored = await db.fetchrow("SELECT * FROM todolist WHERE id = $1", task.id)
    assert stored is not None
    assert (task.tenant_id, task.agent_orch, task.query, task.proc_inst_id) == (
        "default",
        "demo",
        "hello",
        proc,
    )
    assert (task.fence, task.attempts, task.max_attempts, task.last_seq) == (
        stored["fence"],
        1,
        4,
        7,
    )
    assert list(task.row().items()) == list(stored.items())  # every column, in table order
    context = task.loaded_context()
    assert set(context) == {"form", "users", "tenant_mcp", "agent_profile", "sources"}
    assert context["form"]["html"] == "<form/>" and context["users"] is None
    assert task.form_id == "order_form"


async def test_a_batch_that_ends_a_task_emits_task_completed_once(db: Database) -> None:
    """The batch write emits task.completed itself (migration 0033: the row trigger leaves
    IN_PROGRESS -> DONE to it): for a tenant with an enabled endpoint, with the trigger's
    payload, once even when the batch runs twice; nothing for a tenant without one. A task
    that fails still goes through the trigger."""
    await TenantRepository(db).ensure("default")
    await TenantRepository(db).ensure("quiet")
    hooks = WebhookRepository(db, SecretBox([new_key()]))
    endpoint = await hooks.create("default", "https://example.com/a", [])
    queries = WorkerQueries(db)
    task_id, fence = await _claim_one(queries, db)
    await db.execute("INSERT INTO todolist (tenant_id, agent_orch) VALUES ('quiet', 'demo')")
    [quiet] = await queries.claim(["demo"], 1, "w", 30.0)
    failing_id, failing_fence = await _claim_one(queries, db)

    batch = [
        TaskWrite(task_id, fence, events=[_event(1)], status=TaskStatus.DONE, output_json="1"),
        TaskWrite(quiet.id, quiet.fence, events=[_event(1)], status=TaskStatus.DONE),
        TaskWrite(failing_id, failing_fence, events=[_event(1)], status=TaskStatus.FAILED),
    ]
    assert await queries.apply_batch(batch) == {task_id, quiet.id, failing_id}
    assert await queries.apply_batch(batch) == {task_id, quiet.id, failing_id}
    rows = await db.fetch(
        "SELECT tenant_id, endpoint_id, event_type, payload FROM webhook_deliveries"
        " ORDER BY event_type"
    )
    assert [(r["tenant_id"], r["endpoint_id"], r["event_type"]) for r in rows] == [
        ("default", endpoint.id, "task.completed"),
        ("default", endpoint.id, "task.failed"),
    ]
    payload = rows[0]["payload"]
    assert payload["type"] == "task.completed"
    assert payload["data"] == {
        "task_id": str(task_id),
        "status": "DONE",
        "agent_orch": "demo",
        "proc_inst_id": None,
        "activity_id": None,
        "user_id": None,
        "role": None,
    }
    assert set(rows[1]["payload"]["data"]) == set(payload["data"])


async def test_lease_recovery_says_which_tasks_it_put_back_and_for_which_agent(
    db: Database,
) -> None:
    queries = WorkerQueries(db)
    task_id, _ = await _claim_one(queries, db)
    await db.execute(
        "UPDATE todolist SET lease_until = now() - interval '1 s' WHERE id = $1", task_id
    )
    assert await queries.recover_expired() == [(task_id, "demo", TaskStatus.PENDING)]
    assert await queries.recover_expired() == []

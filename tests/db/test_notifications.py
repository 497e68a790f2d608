"""Migration 0024's triggers and db/notifications.py: notifications and webhook deliveries
commit (or roll back) with the change that causes them, and the live stream never hands out
a cursor that a later commit could sort before."""

from __future__ import annotations

import uuid

import pytest

from processgpt.db.database import Database
from processgpt.db.notifications import NotificationRepository
from processgpt.db.secret_box import SecretBox, new_key
from processgpt.db.tenants import TenantRepository
from processgpt.db.webhooks import WebhookRepository
from tests.support import wait_until

HUMAN_TASK = """INSERT INTO todolist (tenant_id, agent_orch, status, user_id, role, activity_name)
VALUES ($1, 'human', 'TODO', $2, $3, $4) RETURNING id"""


@pytest.fixture
async def tenants(db: Database) -> None:
    for tenant in ("acme", "globex"):
        await TenantRepository(db).ensure(tenant)


async def count(db: Database, table: str) -> int:
    value: int = await db.fetchval(f"SELECT count(*) FROM {table}")
    return value


@pytest.mark.usefixtures("tenants")
async def test_notifications_and_deliveries_commit_with_their_change(db: Database) -> None:
    hooks = WebhookRepository(db, SecretBox([new_key()]))
    all_types = await hooks.create("acme", "https://example.com/a", [])
    await hooks.create("acme", "https://example.com/b", ["task.failed"])
    await hooks.create("globex", "https://example.com/c", [])

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.transaction() as conn:
            await conn.fetchval(HUMAN_TASK, "acme", "alice", "manager", "Approve")
            assert await conn.fetchval("SELECT count(*) FROM notifications") == 1
            raise Boom
    assert await count(db, "notifications") == 0 and await count(db, "webhook_deliveries") == 0

    task_id = await db.fetchval(HUMAN_TASK, "acme", "alice", "manager", "Approve")
    notes = await NotificationRepository(db).inbox("acme")
    assert [(n.type, n.user_id, n.role, n.todo_id) for n in notes] == [
        ("TASK_ASSIGNED", "alice", "manager", task_id)
    ]
    assert notes[0].message == "New work item: Approve" and not notes[0].read
    rows = await db.fetch("SELECT endpoint_id, event_type, payload FROM webhook_deliveries")
    assert [(r["endpoint_id"], r["event_type"]) for r in rows] == [
        (all_types.id, "human_task.assigned")
    ]
    assert rows[0]["payload"]["data"]["task_id"] == str(task_id)
    assert rows[0]["payload"]["type"] == "human_task.assigned"

    # A task that ends: no notification, deliveries to the endpoints that want the type.
    await db.execute(
        "UPDATE todolist SET status = 'FAILED', finished_at = now() WHERE id = $1", task_id
    )
    types = sorted(
        r["event_type"] for r in await db.fetch("SELECT event_type FROM webhook_deliveries")
    )
    assert types == ["human_task.assigned", "task.failed", "task.failed"]
    assert await count(db, "notifications") == 1


@pytest.mark.usefixtures("tenants")
async def test_root_instances_notify_when_they_complete_or_have_an_incident(db: Database) -> None:
    insert = """INSERT INTO bpm_proc_inst (tenant_id, proc_inst_name, parent_proc_inst_id,
                    parent_node_id, parent_activation) VALUES ('acme', $1, $2, $3, $4)
                RETURNING proc_inst_id"""
    root = await db.fetchval(insert, "order 7", None, None, None)
    child = await db.fetchval(insert, "child", root, "call", 1)
    done = "UPDATE bpm_proc_inst SET status = $2, end_date = now() WHERE proc_inst_id = $1"
    await db.execute(done, child, "COMPLETED")
    await db.execute("UPDATE bpm_proc_inst SET status = 'INCIDENT' WHERE proc_inst_id = $1", root)
    await db.execute(done, root, "COMPLETED")
    notes = await NotificationRepository(db).inbox("acme")
    assert [(n.type, n.proc_inst_id, n.message) for n in notes] == [
        ("PROCESS_DONE", root, "Process completed: order 7"),
        ("PROCESS_INCIDENT", root, "Process needs attention: order 7"),
    ]


@pytest.mark.usefixtures("tenants")
async def test_inbox_filters_and_read_marks(db: Database) -> None:
    repo = NotificationRepository(db)
    await db.fetchval(HUMAN_TASK, "acme", "alice", None, "a")
    await db.fetchval(HUMAN_TASK, "acme", None, "manager", "m")
    await db.fetchval(HUMAN_TASK, "acme", "bob", "clerk", "b")
    await db.fetchval(HUMAN_TASK, "acme", None, None, "everyone")
    await db.fetchval(HUMAN_TASK, "globex", "alice", None, "theirs")

    def names(items: list[object]) -> list[str]:
        return [n.data["activity_name"] for n in items]  # type: ignore[attr-defined]

    assert names(await repo.inbox("acme")) == ["everyone", "b", "m", "a"]
    assert names(await repo.inbox("acme", user="alice")) == ["everyone", "a"]
    assert names(await repo.inbox("acme", user="alice", role="manager")) == ["everyone", "m", "a"]
    assert names(await repo.inbox("acme", role="clerk")) == ["everyone", "b"]
    page = await repo.inbox("acme", limit=2)
    assert names(await repo.inbox("acme", before=page[-1].id)) == ["m", "a"]

    first = (await repo.inbox("acme", user="alice"))[-1]
    marked = await repo.mark_read("acme", first.id)
    assert marked.read and marked.read_at is not None
    assert names(await repo.inbox("acme", user="alice", unread=True)) == ["everyone"]
    assert await repo.mark_all_read("acme", user="alice") == 1
    assert names(await repo.inbox("acme", unread=True)) == ["b", "m"]
    # Another tenant's notification is not found.
    theirs = (await repo.inbox("globex"))[0]
    with pytest.raises(Exception, match="not found"):
        await repo.mark_read("acme", theirs.id)
    assert await repo.mark_all_read("globex") == 1


@pytest.mark.usefixtures("tenants")
async def test_the_stream_waits_for_a_transaction_that_commits_late(db: Database) -> None:
    """A transaction that took the lower id but commits last: the stream holds the later
    row back until then, so no cursor handed out can skip it."""
    repo = NotificationRepository(db)
    start = await repo.horizon()
    async with db.pool.acquire() as slow:
        transaction = slow.transaction()
        await transaction.start()
        early = await slow.fetchval(HUMAN_TASK, "acme", "alice", None, "early id, late commit")
        await db.fetchval(HUMAN_TASK, "acme", "alice", None, "late id, early commit")
        page, held = await repo.after("acme", start)
        assert page == [] and held
        await transaction.commit()

    async def both() -> list[object] | None:
        # Other databases' transactions on the same server (tests running beside this one)
        # hold the horizon back too, for as long as they run.
        found, _held = await repo.after("acme", start)
        return found if len(found) == 2 else None

    page = await wait_until(both, timeout=30)
    assert [n.data["activity_name"] for _c, n in page] == [
        "early id, late commit",
        "late id, early commit",
    ]
    assert page[0][1].todo_id == early
    cursors = [c for c, _n in page]
    assert cursors == sorted(cursors) and all(c > start for c in cursors)
    assert (await repo.after("acme", cursors[0]))[0] == [page[1]]
    assert (await repo.after("acme", cursors[1]))[0] == []
    assert uuid.UUID(str(early))

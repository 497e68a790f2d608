"""A step is one transaction: a connection terminated at any point of it leaves nothing of
it, and the same step then commits whole."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from processgpt.db.database import Database
from processgpt.db.process_instances import ProcessInstances
from processgpt.domain.process.model import BoundaryTimer, Node, TimerSpec
from processgpt.domain.process.state import InstanceStatus
from tests.domain.process.builders import build
from tests.runtime.process_support import human_task, open_task, publish


class _KillingConnection:
    """Forwards to a connection; after its ``kill_after``-th statement the server ends the
    connection's backend (pg_terminate_backend) before the caller goes on."""

    def __init__(self, conn: Any, killer: Database, kill_after: int) -> None:
        self._conn = conn
        self._killer = killer
        self._left = kill_after

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute"):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await attr(*args, **kwargs)
            self._left -= 1
            if self._left == 0:
                pid = self._conn.get_server_pid()
                await self._killer.execute("SELECT pg_terminate_backend($1)", pid)
            return result

        return call


class _KillingDatabase:
    def __init__(self, db: Database, kill_after: int) -> None:
        self._db = db
        self._kill_after = kill_after

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self._db.transaction() as conn:
            yield _KillingConnection(conn, self._db, self._kill_after)


async def _snapshot(db: Database, instance_id: uuid.UUID) -> dict[str, Any]:
    inst = await db.fetchrow(
        "SELECT state, status, history_seq, variables_data, current_activity_ids "
        "FROM bpm_proc_inst WHERE proc_inst_id = $1",
        instance_id,
    )
    tasks = await db.fetch(
        "SELECT id, status, fence, output FROM todolist WHERE proc_inst_id = $1 ORDER BY id",
        instance_id,
    )
    return {
        "instance": dict(inst),
        "tasks": [dict(t) for t in tasks],
        "history": await db.fetchval(
            "SELECT count(*) FROM process_history WHERE proc_inst_id = $1", instance_id
        ),
        "timers": await db.fetch(
            "SELECT key FROM process_timers WHERE proc_inst_id = $1 ORDER BY key", instance_id
        ),
        "events": await db.fetchval(
            "SELECT count(*) FROM events WHERE proc_inst_id = $1", instance_id
        ),
    }


async def test_a_completion_killed_at_each_statement_leaves_nothing(db: Database) -> None:
    timed = human_task("b")
    timed = Node(
        **{**timed.__dict__, "boundary": (BoundaryTimer("late", TimerSpec(duration="P1D")),)}
    )
    graph = build(
        "s>a a>p1 p1>b p1>c b>p2 c>p2 late>d p2>e d>e2",
        nodes=[human_task("a"), timed, human_task("c"), human_task("d")],
        gid="killed",
    )
    await publish(db, graph)
    plain = ProcessInstances(db)
    started = await plain.start(
        "default", "killed", version=None, variables={}, roles={}, name="", idempotency_key=None
    )
    instance_id = started.instance_id
    a = await open_task(db, instance_id, "a")
    before = await _snapshot(db, instance_id)
    points = 0
    for kill_after in range(1, 20):
        killing = ProcessInstances(_KillingDatabase(db, kill_after))  # type: ignore[arg-type]
        try:
            await killing.complete_task("default", a["id"], {"v": 1}, None)
        except Exception:
            points += 1
            assert await _snapshot(db, instance_id) == before, f"killed after {kill_after}"
            continue
        break  # the step has fewer statements than kill_after: it committed whole
    assert points >= 4  # lock, task, step, timers/history: every point was tried
    after = await _snapshot(db, instance_id)
    assert after != before
    assert after["instance"]["status"] == "RUNNING"
    assert sorted(after["instance"]["current_activity_ids"]) == ["b", "c"]
    assert [t["key"] for t in after["timers"]] == ["late/1"]
    inst = await plain.get("default", instance_id)
    assert inst.status is InstanceStatus.RUNNING and inst.variables == {"v": 1}


async def test_a_cancel_killed_before_commit_leaves_tasks_and_timers(db: Database) -> None:
    timed = Node(
        **{
            **human_task("a").__dict__,
            "boundary": (BoundaryTimer("late", TimerSpec(duration="P1D")),),
        }
    )
    await publish(db, build("s>a a>e late>e2", nodes=[timed], gid="cancelkill"))
    plain = ProcessInstances(db)
    started = await plain.start(
        "default", "cancelkill", version=None, variables={}, roles={}, name="", idempotency_key=None
    )
    before = await _snapshot(db, started.instance_id)
    killing = ProcessInstances(_KillingDatabase(db, 2))  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - the connection was ended under it
        await killing.cancel("default", started.instance_id, "stop")
    assert await _snapshot(db, started.instance_id) == before
    await plain.cancel("default", started.instance_id, "stop")
    after = await _snapshot(db, started.instance_id)
    assert after["instance"]["status"] == "CANCELLED" and after["timers"] == []
    assert [t["status"] for t in after["tasks"]] == ["CANCELLED"]

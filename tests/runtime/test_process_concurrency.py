"""Races on one instance: branches completed at the same moment, a timer firing while its
task is completed. Each race is two transactions on separate connections released together;
the instance lock serialises them and exactly one outcome may be committed."""

from __future__ import annotations

import asyncio
import uuid

from processgpt.db.database import Database
from processgpt.domain.process.model import BoundaryTimer, TimerSpec
from processgpt.domain.process.state import InstanceStatus
from processgpt.runtime.process_service import ProcessService
from tests.domain.process.builders import build, flow
from tests.runtime.process_support import human_task, open_task, publish

REPS = 80


async def _together(*calls: object) -> list[object]:
    barrier = asyncio.Barrier(len(calls))

    async def one(call: object) -> object:
        await barrier.wait()
        return await call  # type: ignore[misc]

    return await asyncio.gather(*(one(c) for c in calls), return_exceptions=True)


async def _count(db: Database, instance_id: uuid.UUID, activity_id: str) -> int:
    value = await db.fetchval(
        "SELECT count(*) FROM todolist WHERE proc_inst_id = $1 AND activity_id = $2",
        instance_id,
        activity_id,
    )
    return int(value)


async def test_parallel_branches_completed_together_fire_the_join_once(db: Database) -> None:
    graph = build(
        "s>p1 p1>a p1>b a>p2 b>p2 p2>c c>e",
        nodes=[human_task("a"), human_task("b"), human_task("c")],
        gid="fork",
    )
    await publish(db, graph)
    service = ProcessService(db)
    for _ in range(REPS):
        inst, _ = await service.start("default", "fork")
        a = await open_task(db, inst.id, "a")
        b = await open_task(db, inst.id, "b")
        results = await _together(
            service.complete_task("default", a["id"], {"from_a": 1}),
            service.complete_task("default", b["id"], {"from_b": 2}),
        )
        assert not [r for r in results if isinstance(r, BaseException)], results
        assert await _count(db, inst.id, "c") == 1
        inst = await service.get("default", inst.id)
        assert inst.current_activity_ids == ["c"]
        assert inst.variables == {"from_a": 1, "from_b": 2}
        lines = await service.history("default", inst.id)
        assert [ln.kind for ln in lines].count("join_fired") == 1
        assert [ln.seq for ln in lines] == list(range(1, len(lines) + 1))


async def test_inclusive_branches_completed_together_fire_the_join_once(db: Database) -> None:
    graph = build(
        [
            flow("s", "i1"),
            flow("i1", "a", "go_a"),
            flow("i1", "b", "go_b"),
            flow("i1", "d", "go_d"),
            flow("a", "i2"),
            flow("b", "i2"),
            flow("d", "i2"),
            flow("i2", "c"),
            flow("c", "e"),
        ],
        nodes=[human_task("a"), human_task("b"), human_task("c"), human_task("d")],
        variables=["go_a", "go_b", "go_d"],
        gid="incl",
    )
    await publish(db, graph)
    service = ProcessService(db)
    for _ in range(REPS):
        inst, _ = await service.start(
            "default", "incl", variables={"go_a": True, "go_b": True, "go_d": False}
        )
        a = await open_task(db, inst.id, "a")
        b = await open_task(db, inst.id, "b")
        assert await _count(db, inst.id, "d") == 0
        results = await _together(
            service.complete_task("default", a["id"], {}),
            service.complete_task("default", b["id"], {}),
        )
        assert not [r for r in results if isinstance(r, BaseException)], results
        assert await _count(db, inst.id, "c") == 1
        assert (await service.get("default", inst.id)).current_activity_ids == ["c"]


async def test_a_timer_and_its_tasks_completion_racing_end_in_one_outcome(db: Database) -> None:
    task = human_task("a")
    task = type(task)(
        **{
            **task.__dict__,
            "boundary": (BoundaryTimer("late", TimerSpec(duration="PT0S"), interrupting=True),),
        }
    )
    graph = build(
        [
            flow("s", "a"),
            flow("a", "done"),
            flow("late", "esc"),
            flow("done", "e1"),
            flow("esc", "e2"),
        ],
        nodes=[task, human_task("done"), human_task("esc")],
        gid="race",
    )
    await publish(db, graph)
    service = ProcessService(db)
    outcomes = {"completed": 0, "timer": 0}
    for _ in range(REPS):
        inst, _ = await service.start("default", "race")
        a = await open_task(db, inst.id, "a")
        results = await _together(
            service.complete_task("default", a["id"], {}),
            service.fire_due_timers(100),
        )
        completed = not isinstance(results[0], BaseException)
        done, esc = await _count(db, inst.id, "done"), await _count(db, inst.id, "esc")
        status = await db.fetchval("SELECT status FROM todolist WHERE id = $1", a["id"])
        timers = await db.fetchval(
            "SELECT count(*) FROM process_timers WHERE proc_inst_id = $1", inst.id
        )
        assert timers == 0
        if completed:
            assert (done, esc, status) == (1, 0, "DONE")
            outcomes["completed"] += 1
        else:
            assert (done, esc, status) == (0, 1, "CANCELLED"), results
            outcomes["timer"] += 1
        state = await service.get("default", inst.id)
        assert state.status is InstanceStatus.RUNNING
        assert len(state.current_activity_ids) == 1
    assert sum(outcomes.values()) == REPS

"""The schedule loop against the real database: each tick starts its work once across
concurrent loops on separate connections, missed ticks run once, failures are recorded,
and a running worker fires a schedule when it is due."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from processgpt.db.database import Database
from processgpt.db.schedules import DueTicks, ScheduleRepository
from processgpt.db.tasks import PendingGate, TaskRepository
from processgpt.db.tenants import TenantRepository
from processgpt.domain.process.model import Flow, Node, NodeKind, ProcessGraph, TimerSpec
from processgpt.domain.schedule import Cadence, Schedule, ScheduleSpec, next_tick
from processgpt.runtime.process_service import ProcessService
from processgpt.runtime.schedules import ScheduleLoop, tick_key
from tests.agents.executors import NoopExecutor
from tests.runtime.process_support import human_task, publish
from tests.support import wait_until

TASK = {"agent_orch": "demo", "query": "tick", "input": {"n": 1}}


@pytest.fixture
async def schedules(db: Database) -> ScheduleRepository:
    await TenantRepository(db).ensure("acme")
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo') ON CONFLICT DO NOTHING")
    return ScheduleRepository(db)


def loop_on(db: Database, batch: int = 20) -> ScheduleLoop:
    return ScheduleLoop(ScheduleRepository(db), TaskRepository(db), ProcessService(db), batch=batch)


async def make_due(
    db: Database, schedule_id: uuid.UUID, ago: timedelta = timedelta(seconds=1)
) -> None:
    """Put the schedule's next tick in the past (as if its time had come)."""
    await db.execute(
        "UPDATE schedules SET next_run_at = now() - $2::interval WHERE id = $1", schedule_id, ago
    )


async def scheduled_tasks(db: Database) -> int:
    return int(
        await db.fetchval("SELECT count(*) FROM todolist WHERE idempotency_key LIKE 'schedule:%'")
    )


async def fire_together(loops: list[ScheduleLoop]) -> None:
    """Every loop fires what is due, all starting at the same moment, until none finds more."""
    barrier = asyncio.Barrier(len(loops))

    async def fire(loop: ScheduleLoop) -> None:
        await barrier.wait()
        while await loop.fire_due():
            pass

    await asyncio.gather(*(fire(loop) for loop in loops))


@pytest.fixture
async def other_pools(db_url: str) -> AsyncIterator[list[Database]]:
    pools = [await Database.connect(db_url, max_size=3) for _ in range(3)]
    yield pools
    for pool in pools:
        await pool.close()


async def test_each_tick_starts_its_work_once_across_three_concurrent_loops(
    db: Database, schedules: ScheduleRepository, other_pools: list[Database]
) -> None:
    made = [
        await schedules.create(
            "acme", ScheduleSpec(f"s{i}", Cadence(cron="* * * * *"), "task", task=TASK)
        )
        for i in range(12)
    ]
    # Small batches, so that the loops contend for the same rows all round long.
    loops = [loop_on(pool, batch) for pool, batch in zip(other_pools, (1, 2, 3), strict=True)]
    rounds = 5
    for round_ in range(rounds):
        for schedule in made:
            await make_due(db, schedule.id, timedelta(minutes=round_ * 2 + 1))
        await fire_together(loops)
        assert await scheduled_tasks(db) == len(made) * (round_ + 1)
    assert sum(loop.fired for loop in loops) == len(made) * rounds
    for schedule in made:
        stored = await schedules.get("acme", schedule.id)
        assert stored.runs == rounds and stored.last_error is None
        assert stored.next_run_at is not None and stored.enabled


async def test_ticks_missed_while_down_run_once(
    db: Database, schedules: ScheduleRepository
) -> None:
    every5 = Cadence(cron="*/5 * * * *")
    made = await schedules.create("acme", ScheduleSpec("digest", every5, "task", task=TASK))
    now = await db.fetchval("SELECT now()")
    # "Down" for an hour: the schedule's next tick is a tick of an hour ago.
    due = next_tick(every5, now - timedelta(hours=1, minutes=5))
    assert due is not None
    await db.execute("UPDATE schedules SET next_run_at = $2 WHERE id = $1", made.id, due)
    loop = loop_on(db)
    assert await loop.fire_due() == 1
    assert await loop.fire_due() == 0
    assert await scheduled_tasks(db) == 1
    stored = await schedules.get("acme", made.id)
    assert stored.runs == 1 and stored.skipped >= 11
    assert stored.next_run_at is not None and stored.next_run_at > now
    assert stored.next_run_at == next_tick(every5, stored.last_run_at)  # type: ignore[arg-type]


async def test_a_tick_that_cannot_start_is_recorded_and_the_schedule_goes_on(
    db: Database, schedules: ScheduleRepository
) -> None:
    task = {**TASK, "agent_orch": "nobody"}
    made = await schedules.create(
        "acme", ScheduleSpec("broken", Cadence(cron="0 * * * *"), "task", task=task)
    )
    good = await schedules.create(
        "acme", ScheduleSpec("good", Cadence(cron="0 * * * *"), "task", task=TASK)
    )
    await make_due(db, made.id)
    await make_due(db, good.id)
    assert await loop_on(db).fire_due() == 2
    broken = await schedules.get("acme", made.id)
    assert broken.runs == 0 and broken.last_error is not None
    assert broken.last_error.startswith("unknown_agent")
    assert broken.enabled and broken.next_run_at is not None
    assert (await schedules.get("acme", good.id)).runs == 1
    assert await scheduled_tasks(db) == 1  # the good one's, not undone by the broken one


async def test_a_tick_of_a_tenant_at_its_pending_limit_starts_nothing(
    db: Database, schedules: ScheduleRepository
) -> None:
    # Schedules are tenant input: their ticks are held to the tenant's pending limit, as
    # the API's creates are (else a few every-minute schedules could queue without end).
    await TenantRepository(db).put("acme", max_pending_tasks=1, set_limit=True)
    made = await schedules.create(
        "acme", ScheduleSpec("flood", Cadence(cron="* * * * *"), "task", task=TASK)
    )
    gated = ScheduleLoop(
        ScheduleRepository(db),
        TaskRepository(db),
        ProcessService(db),
        gate=PendingGate(TaskRepository(db), 10_000, fresh_for=0, refused_for=0),
    )
    await make_due(db, made.id)
    assert await gated.fire_due() == 1
    assert await scheduled_tasks(db) == 1  # the first tick fills the limit
    await make_due(db, made.id)
    await gated.fire_due()
    assert await scheduled_tasks(db) == 1
    stored = await schedules.get("acme", made.id)
    assert stored.runs == 1 and (stored.last_error or "").startswith("too_many_pending")
    assert stored.enabled  # the schedule goes on; a later tick runs once there is room


async def test_a_once_schedule_fires_once_and_is_disabled(
    db: Database, schedules: ScheduleRepository
) -> None:
    at = await db.fetchval("SELECT now() + interval '1 hour'")
    made = await schedules.create(
        "acme", ScheduleSpec("once", Cadence(), "task", task=TASK, first_run_at=at)
    )
    assert made.next_run_at == at
    await make_due(db, made.id)
    loop = loop_on(db)
    assert await loop.fire_due() == 1
    stored = await schedules.get("acme", made.id)
    assert (stored.enabled, stored.next_run_at, stored.runs) == (False, None, 1)
    assert await loop.fire_due() == 0


async def test_a_running_worker_fires_a_schedule_when_it_is_due(
    db: Database, schedules: ScheduleRepository, start_worker: object
) -> None:
    worker = await start_worker({"demo": NoopExecutor()})  # type: ignore[operator]
    made = await schedules.create(
        "acme", ScheduleSpec("soon", Cadence(cron="0 0 1 1 *"), "task", task=TASK)
    )
    await make_due(db, made.id)
    await db.execute("SELECT pg_notify('processgpt_schedules', '')")
    await wait_until(lambda: worker.schedule_loop.fired >= 1)
    done = "SELECT count(*) FROM todolist WHERE status = 'DONE' AND idempotency_key LIKE 's%'"
    await wait_until(lambda: db.fetchval(done))
    stored = await schedules.get("acme", made.id)
    assert stored.runs == 1 and stored.next_run_at is not None


def review_graph(*, timer: TimerSpec | None = None) -> ProcessGraph:
    """start → a person's review → end; with ``timer``, also a timer start ``nightly`` →
    the review."""
    nodes = [Node("start", NodeKind.START), human_task("check"), Node("end", NodeKind.END)]
    flows = [Flow("f1", "start", "check"), Flow("f2", "check", "end")]
    if timer is not None:
        nodes.append(Node("nightly", NodeKind.START, timer=timer))
        flows.append(Flow("f3", "nightly", "check"))
    return ProcessGraph(id="review", nodes=tuple(nodes), flows=tuple(flows))


async def instances(db: Database) -> list[dict[str, object]]:
    rows = await db.fetch(
        "SELECT proc_inst_id, proc_def_version, idempotency_key, variables_data, status "
        "FROM bpm_proc_inst ORDER BY start_date"
    )
    return [dict(r) for r in rows]


async def test_process_ticks_start_one_instance_each_across_three_loops(
    db: Database, schedules: ScheduleRepository, other_pools: list[Database]
) -> None:
    await publish(db, review_graph(), tenant="acme")
    made = [
        await schedules.create(
            "acme",
            ScheduleSpec(
                f"p{i}", Cadence(cron="* * * * *"), "process", proc_def_id="review",
                variables={"n": i},
            ),
        )
        for i in range(6)
    ]  # fmt: skip
    loops = [loop_on(pool, batch) for pool, batch in zip(other_pools, (1, 2, 3), strict=True)]
    rounds = 3
    for round_ in range(rounds):
        for schedule in made:
            await make_due(db, schedule.id, timedelta(minutes=round_ * 2 + 1))
        await fire_together(loops)
    started = await instances(db)
    assert len(started) == len(made) * rounds
    assert len({row["idempotency_key"] for row in started}) == len(started)
    assert {row["status"] for row in started} == {"RUNNING"}
    open_steps = await db.fetchval("SELECT count(*) FROM todolist WHERE status = 'TODO'")
    assert open_steps == len(started)  # each instance's first step, once
    for schedule in made:
        assert (await schedules.get("acme", schedule.id)).runs == rounds


async def test_a_round_that_failed_after_its_instance_committed_starts_no_second(
    db: Database, schedules: ScheduleRepository
) -> None:
    await publish(db, review_graph(), tenant="acme")
    made = await schedules.create(
        "acme", ScheduleSpec("p", Cadence(cron="0 * * * *"), "process", proc_def_id="review")
    )
    await make_due(db, made.id)
    due = await schedules.get("acme", made.id)
    # The instance of this tick committed, then the round died before its own commit.
    first, created = await ProcessService(db).start("acme", "review", idempotency_key=tick_key(due))
    assert created
    assert await loop_on(db).fire_due() == 1
    assert [row["proc_inst_id"] for row in await instances(db)] == [first.id]
    stored = await schedules.get("acme", made.id)
    assert stored.runs == 1 and stored.next_run_at is not None
    assert due.next_run_at is not None and stored.next_run_at > due.next_run_at


async def test_a_deleted_definition_is_recorded_as_the_ticks_error(
    db: Database, schedules: ScheduleRepository
) -> None:
    await publish(db, review_graph(), tenant="acme")
    made = await schedules.create(
        "acme",
        ScheduleSpec("p", Cadence(cron="0 * * * *"), "process", proc_def_id="review", version=1),
    )
    await db.execute("ALTER TABLE proc_def DISABLE TRIGGER USER")
    await db.execute("DELETE FROM proc_def WHERE id = 'review'")
    await make_due(db, made.id)
    assert await loop_on(db).fire_due() == 1
    stored = await schedules.get("acme", made.id)
    assert stored.runs == 0 and (stored.last_error or "").startswith("definition_not_found")
    assert await instances(db) == []


async def test_a_timer_start_event_starts_its_instance_when_due(
    db: Database, schedules: ScheduleRepository
) -> None:
    version = await publish(db, review_graph(timer=TimerSpec(cycle="0 6 * * *")), tenant="acme")
    (made,) = await schedules.list("acme")
    assert (made.source, made.version, made.start_node) == ("definition", version, "nightly")
    await make_due(db, made.id)
    assert await loop_on(db).fire_due() == 1
    (started,) = await instances(db)
    assert started["proc_def_version"] == version
    history = await db.fetch(
        "SELECT kind, node_id FROM process_history WHERE proc_inst_id = $1 ORDER BY seq",
        started["proc_inst_id"],
    )
    # The tick's token leaves the timer start, not the definition's plain start.
    assert (history[0]["kind"], history[0]["node_id"]) == ("instance_started", "nightly")


async def test_a_past_date_start_fires_once_even_when_the_definition_is_republished(
    db: Database, schedules: ScheduleRepository
) -> None:
    past = TimerSpec(date="2020-01-01T00:00:00+00:00")
    await publish(db, review_graph(timer=past), tenant="acme")
    assert await loop_on(db).fire_due() == 1  # a past date fires at once
    assert len(await instances(db)) == 1
    # v2 and v3 with the same date: that date has fired; the new schedules stay disabled.
    for _ in range(2):
        await publish(db, review_graph(timer=past), tenant="acme")
        (again,) = await schedules.list("acme")
        assert not again.enabled
        assert await loop_on(db).fire_due() == 0
        assert len(await instances(db)) == 1
    # v4 moves the date after the last firing: it fires at that date, once.
    soon = TimerSpec(date="2100-01-01T00:00:00+00:00")
    await publish(db, review_graph(timer=soon), tenant="acme")
    (moved,) = await schedules.list("acme")
    assert moved.enabled
    await make_due(db, moved.id)
    assert await loop_on(db).fire_due() == 1
    assert len(await instances(db)) == 2


class CrashAfterStart(ScheduleLoop):
    """A loop that dies after starting a tick's work, before the round commits (as a worker
    killed at that moment)."""

    async def _start(self, due: DueTicks, schedule: Schedule) -> None:
        await super()._start(due, schedule)
        raise RuntimeError("killed before the commit")


async def test_a_round_that_dies_after_starting_its_work_leaves_nothing(
    db: Database, schedules: ScheduleRepository
) -> None:
    await publish(db, review_graph(), tenant="acme")
    process = await schedules.create(
        "acme", ScheduleSpec("p", Cadence(cron="0 * * * *"), "process", proc_def_id="review")
    )
    task = await schedules.create(
        "acme", ScheduleSpec("t", Cadence(cron="0 * * * *"), "task", task=TASK)
    )
    for made in (process, task):
        await make_due(db, made.id)
    before = {s.id: s for s in await schedules.list("acme")}
    crashing = CrashAfterStart(ScheduleRepository(db), TaskRepository(db), ProcessService(db))
    with pytest.raises(RuntimeError):
        await crashing.fire_due()
    # Nothing of the round is left: no instance, no step, no task, the ticks still due.
    assert await instances(db) == []
    assert await db.fetchval("SELECT count(*) FROM todolist") == 0
    assert await db.fetchval("SELECT count(*) FROM process_history") == 0
    assert {s.id: s for s in await schedules.list("acme")} == before
    assert await loop_on(db).fire_due() == 2
    assert len(await instances(db)) == 1 and await scheduled_tasks(db) == 1

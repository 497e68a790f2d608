"""Schedules survive restarts: worker processes SIGKILLed, twelve days of ticks missed while
nothing ran, then two new worker processes: the missed ticks run once, not once each and not
once per worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processgpt.db.database import Database
from processgpt.db.schedules import ScheduleRepository
from processgpt.db.tenants import TenantRepository
from processgpt.domain.schedule import Cadence, ScheduleSpec, next_tick
from tests.support import StartProcess, start_worker_process, wait_until

TASK = {"agent_orch": "demo", "query": "tick", "input": {"steps": 1}}


async def test_ticks_missed_while_every_worker_was_down_run_once(
    db: Database, start_process: StartProcess
) -> None:
    await TenantRepository(db).ensure("acme")
    first = await start_worker_process(start_process)
    # Daily, twelve hours away from now: no real tick comes due while the test runs.
    daily = Cadence(cron=f"0 {(datetime.now(UTC).hour + 12) % 24} * * *")
    made = await ScheduleRepository(db).create(
        "acme", ScheduleSpec("daily", daily, "task", task=TASK)
    )
    first.kill()  # SIGKILL: nothing runs any more

    # Twelve days pass with nothing running: the schedule's tick is one of twelve days ago.
    now = await db.fetchval("SELECT now()")
    due = next_tick(daily, now - timedelta(days=12, hours=1))
    await db.execute("UPDATE schedules SET next_run_at = $2 WHERE id = $1", made.id, due)

    workers = [await start_worker_process(start_process) for _ in range(2)]
    schedule_tasks = "SELECT count(*) FROM todolist WHERE idempotency_key LIKE 'schedule:%'"
    await wait_until(
        lambda: db.fetchval(
            "SELECT count(*) FROM todolist WHERE status = 'DONE' "
            "AND idempotency_key LIKE 'schedule:%'"
        )
    )
    stored = await ScheduleRepository(db).get("acme", made.id)
    assert stored.runs == 1 and stored.skipped >= 11, stored
    assert stored.next_run_at is not None and stored.next_run_at > now
    assert await db.fetchval(schedule_tasks) == 1
    logs = "".join(w.log() for w in workers)
    assert logs.count("schedule fired once for missed ticks") == 1, logs

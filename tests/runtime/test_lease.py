"""Leases against a real database: heartbeats renew them, a lost one stops its run, and the
heartbeat keeps the worker's orchestrators marked as seen."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta

from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskStatus, TaskSubmission
from tests.agents import executors as ex
from tests.conftest import StartWorker
from tests.support import wait_until

TENANT = "default"
LONG_AGO = datetime.fromisoformat("2000-01-01T00:00:00+00:00")


async def submit(repo: TaskRepository, agent: str, **fields: object) -> uuid.UUID:
    task, _ = await repo.submit(
        TENANT,
        TaskSubmission(agent_orch=agent, **fields),  # type: ignore[arg-type]
        known_agents=frozenset({agent}),
    )
    return task.id


async def test_heartbeats_renew_the_lease_of_a_quiet_run(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    await start_worker({"slow": ex.SlowExecutor()}, lease_seconds=1.5, shutdown_grace=0.2)
    task_id = await submit(repo, "slow", input={"steps": 2, "delay": 30})
    await wait_until(lambda: str(task_id) in ex.SlowExecutor.started)
    first = await db.fetchval("SELECT lease_until FROM todolist WHERE id = $1", task_id)

    async def renewed() -> bool:
        now = await db.fetchval("SELECT lease_until FROM todolist WHERE id = $1", task_id)
        return bool(now > first + timedelta(seconds=0.7))

    await wait_until(renewed, timeout=10)  # the run writes nothing meanwhile
    assert (await repo.get(TENANT, task_id)).status is TaskStatus.IN_PROGRESS


async def test_a_lease_that_no_longer_holds_stops_its_run_at_the_next_heartbeat(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    """The run is quiet (it sleeps 30 s between events), so only the heartbeat can notice."""
    worker = await start_worker({"slow": ex.SlowExecutor()}, lease_seconds=1.5)
    task_id = await submit(repo, "slow", input={"steps": 2, "delay": 30})
    await wait_until(lambda: str(task_id) in ex.SlowExecutor.started)
    # Another worker owns the task now (its own lease: nobody recovers it meanwhile).
    await db.execute(
        "UPDATE todolist SET fence = fence + 1, consumer = 'thief',"
        " lease_until = now() + interval '1 hour' WHERE id = $1",
        task_id,
    )
    await wait_until(lambda: str(task_id) in ex.SlowExecutor.cancelled, timeout=10)
    await wait_until(lambda: worker.stats["lease_lost"] == 1, timeout=10)
    task = await repo.get(TENANT, task_id)
    assert task.status is TaskStatus.IN_PROGRESS and task.consumer == "thief"


async def test_the_heartbeat_marks_the_served_orchestrators_seen_at_most_every_interval(
    db: Database, start_worker: StartWorker
) -> None:
    """Beats come every 0.1 s; presence is refreshed once per second, for the orchestrators
    this worker serves only."""
    await db.execute(
        "INSERT INTO orchestrators (name, last_seen_at) VALUES ('unserved', $1)", LONG_AGO
    )
    await start_worker(
        {"noop": ex.NoopExecutor(), "slow": ex.SlowExecutor()},
        lease_seconds=0.3,
        presence_interval=1.0,
    )
    await db.execute("UPDATE orchestrators SET last_seen_at = $1", LONG_AGO)

    seen: dict[str, list[datetime]] = {"noop": [], "slow": []}

    async def refreshed_three_times() -> bool:
        for name, value in await db.fetch("SELECT name, last_seen_at FROM orchestrators"):
            if name in seen and value != LONG_AGO and value not in seen[name]:
                seen[name].append(value)
        return all(len(values) >= 3 for values in seen.values())

    await wait_until(refreshed_three_times, timeout=20, interval=0.02)
    for values in seen.values():
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(values)]
        assert all(gap >= 0.5 for gap in gaps), gaps  # not at every beat
    unserved = await db.fetchval("SELECT last_seen_at FROM orchestrators WHERE name = 'unserved'")
    assert unserved == LONG_AGO

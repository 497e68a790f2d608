"""The ``workers`` table: beats, lost and forgotten rows, and which agents are served."""

from __future__ import annotations

import asyncio

from a2a.server.agent_execution import RequestContext
from a2a.server.events import EventQueue

from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.db.workers import ServedAgents, WorkerIdentity, WorkerRegistry
from processgpt.domain.task import TaskStatus, TaskSubmission, unserved_agent_warning
from tests.agents import executors as ex
from tests.conftest import StartWorker
from tests.support import wait_until


def _me(worker_id: str, *agents: str, slots: int = 4) -> WorkerIdentity:
    return WorkerIdentity(worker_id, agents, slots, host="h", pid=123, version="0.1.0")


async def _age(db: Database, worker_id: str, seconds: int) -> None:
    await db.execute(
        "UPDATE workers SET last_heartbeat_at = now() - make_interval(secs => $2) WHERE id = $1",
        worker_id,
        seconds,
    )


async def test_a_beat_writes_the_row_and_forgets_workers_lost_long_ago(db: Database) -> None:
    registry = WorkerRegistry(db, lost_after=30, forget_after=3600)
    await registry.beat(_me("a", "x"), 0)
    await registry.beat(_me("b", "x", "y"), 0)
    await registry.beat(_me("a", "x"), 3)  # a refresh, not a second row
    rows = {r["id"]: r for r in await registry.list()}
    assert rows.keys() == {"a", "b"} and rows["a"]["slots_in_use"] == 3
    assert rows["b"]["agents"] == ["x", "y"] and not rows["b"]["lost"]
    assert await registry.served_agents() == {"x", "y"}

    await _age(db, "b", 60)
    assert [(r["id"], r["lost"]) for r in await registry.list()] == [("a", False), ("b", True)]
    assert await registry.served_agents() == {"x"}  # a lost worker serves nothing
    await registry.beat(_me("a", "x"), 0)
    assert len(await registry.list()) == 2  # lost, not yet forgotten

    await _age(db, "b", 7200)
    await registry.beat(_me("a", "x"), 0)
    assert [r["id"] for r in await registry.list()] == ["a"]
    # a worker forgotten while frozen comes back at its next beat
    await _age(db, "a", 7200)
    await registry.beat(_me("c", "z"), 0)
    await registry.beat(_me("a", "x"), 0)
    assert sorted(r["id"] for r in await registry.list()) == ["a", "c"]

    await registry.deregister("a")
    assert [r["id"] for r in await registry.list()] == ["c"]


async def test_served_agents_reads_again_whenever_the_answer_is_no(db: Database) -> None:
    registry = WorkerRegistry(db)
    served = ServedAgents(registry, local=frozenset({"here"}), cache_seconds=60)
    assert await served.serves("here")  # a worker of this process: no row needed
    assert not await served.serves("x")
    await registry.beat(_me("a", "x"), 0)
    assert await served.serves("x")  # registered just before: seen at once
    await registry.deregister("a")
    assert await served.serves("x")  # a yes is trusted for cache_seconds
    fresh = ServedAgents(registry, cache_seconds=60)
    assert not await fresh.serves("x")


async def test_the_warning_is_only_for_a_pending_task(db: Database) -> None:
    await db.execute("INSERT INTO orchestrators (name) VALUES ('x')")
    served = ServedAgents(WorkerRegistry(db))
    task, _ = await TaskRepository(db).submit("default", TaskSubmission(agent_orch="x"))
    assert (await served.warn(task)).warnings == [unserved_agent_warning("x")]
    running = task.model_copy(update={"status": TaskStatus.IN_PROGRESS})
    assert (await served.warn(running)).warnings == []


async def test_a_worker_registers_reports_its_slots_in_use_and_deregisters(
    db: Database, start_worker: StartWorker
) -> None:
    release = asyncio.Event()

    class Blocking(ex.NoopExecutor):
        async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
            await release.wait()
            await super().execute(context, event_queue)

    worker = await start_worker({"slow": Blocking()}, concurrency=3, presence_interval=0.1)
    registry = WorkerRegistry(db)
    [row] = await registry.list()
    assert row["id"] == worker.identity.id == worker.options.consumer
    assert row["agents"] == ["slow"] and row["slots"] == 3 and row["slots_in_use"] == 0
    repo = TaskRepository(db)
    for _ in range(2):
        await repo.submit("default", TaskSubmission(agent_orch="slow"))

    async def busy() -> bool:
        return (await registry.list())[0]["slots_in_use"] == 2

    await wait_until(busy, timeout=15)
    release.set()

    async def idle() -> bool:
        return (await registry.list())[0]["slots_in_use"] == 0

    await wait_until(idle, timeout=15)
    worker.stop()
    await wait_until(lambda: worker.running == 0, timeout=15)

    async def gone() -> bool:
        return await registry.list() == []

    await wait_until(gone, timeout=15)

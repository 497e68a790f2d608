"""The engine in one process against a real database: results, events, retries,
cancellation, human input, fencing and shutdown."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue

from processgpt.agents.task_runner import A2ATaskRunner
from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.errors import InvalidTransition, UnknownAgent
from processgpt.domain.task import RetryPolicy, TaskStatus, TaskSubmission
from processgpt.runtime.worker import Worker, WorkerOptions
from tests.agents import executors as ex
from tests.conftest import StartWorker
from tests.support import assert_gap_free, wait_until

TENANT = "default"


async def submit(repo: TaskRepository, agent: str, query: str = "q", **fields: object) -> uuid.UUID:
    task, created = await repo.submit(
        TENANT,
        TaskSubmission(agent_orch=agent, query=query, **fields),  # type: ignore[arg-type]
        known_agents=frozenset({agent}),
    )
    assert created
    return task.id


async def wait_status(
    repo: TaskRepository, task_id: uuid.UUID, *statuses: TaskStatus, timeout: float = 15.0
) -> None:
    async def reached() -> bool:
        return (await repo.get(TENANT, task_id)).status in statuses

    await wait_until(reached, timeout)


async def test_a_task_runs_to_done_with_ordered_events(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    await start_worker({"noop": ex.NoopExecutor()})
    task_id = await submit(repo, "noop")
    await wait_status(repo, task_id, TaskStatus.DONE)
    task = await repo.get(TENANT, task_id)
    assert task.output == {"ok": True}
    assert task.attempts == 1 and task.finished_at is not None and task.consumer is None
    rows = await assert_gap_free(db, task_id)
    assert [r["event_type"] for r in rows] == ["task_working", "task_working", "crew_completed"]
    assert [r["data"] for r in rows[:2]] == ["start", "half"]


async def test_seed_minimal_executor_with_unawaited_03_events(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    await start_worker({"crewai-action": ex.MinimalExecutor()})
    task_id = await submit(repo, "crewai-action", "hello")
    await wait_status(repo, task_id, TaskStatus.DONE)
    rows = await assert_gap_free(db, task_id)
    started = rows[0]
    assert started["event_type"] == "task_started"
    assert started["data"] == {"demo": "hello world", "query": "hello"}  # JSON text → JSON
    crew = await db.fetchrow(
        "SELECT crew_type, job_id FROM events WHERE todo_id = $1 AND seq = 1", task_id
    )
    assert crew is not None and crew["crew_type"] == "action" and crew["job_id"] == str(task_id)
    assert (await repo.get(TENANT, task_id)).output == {"demo": "hello world", "query": "hello"}
    assert [r["event_type"] for r in rows].count("crew_completed") == 1


async def test_message_only_executor_completes_with_the_message(
    repo: TaskRepository, start_worker: StartWorker
) -> None:
    await start_worker({"msg": ex.MessageExecutor()})
    task_id = await submit(repo, "msg")
    await wait_status(repo, task_id, TaskStatus.DONE)
    assert (await repo.get(TENANT, task_id)).output == "plain answer"


async def test_executor_returning_without_result_fails_without_retry(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    await start_worker({"silent": ex.SilentExecutor()})
    task_id = await submit(repo, "silent", max_attempts=3)
    await wait_status(repo, task_id, TaskStatus.FAILED)
    task = await repo.get(TENANT, task_id)
    assert task.attempts == 1
    assert task.error is not None and task.error["code"] == "no_result"
    rows = await assert_gap_free(db, task_id)
    assert rows[-1]["event_type"] == "error"


async def test_retries_follow_backoff_then_dead_letter_and_requeue(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    policy = RetryPolicy(base_delay=0.3, max_delay=5.0, jitter=0.5)
    await start_worker({"flaky": ex.FlakyExecutor()}, retry=policy)
    task_id = await submit(repo, "flaky", input={"fail_attempts": 5}, max_attempts=3)
    await wait_status(repo, task_id, TaskStatus.FAILED)
    starts = ex.FlakyExecutor.attempts[str(task_id)]
    assert len(starts) == 3
    errors = await db.fetch(
        "SELECT data, \"timestamp\" FROM events WHERE todo_id = $1 AND event_type = 'error'"
        " ORDER BY seq",
        task_id,
    )
    # attempt n waits within [base·2^(n-1)·(1-jitter), base·2^(n-1)] (+ pickup slack), by the
    # database's clock: from the write that ended attempt n to the one that ended attempt n+1
    # (each attempt fails at once)
    for n, (error, next_error) in enumerate(itertools.pairwise(errors), start=1):
        ceiling = 0.3 * 2 ** (n - 1)
        delay = error["data"]["retry_in_seconds"]
        assert ceiling * 0.5 - 0.001 <= delay <= ceiling + 0.001, (n, delay)
        waited = (next_error["timestamp"] - error["timestamp"]).total_seconds()
        assert delay - 0.001 <= waited <= delay + PICKUP_SLACK, (n, delay, waited)
    task = await repo.get(TENANT, task_id)
    assert task.attempts == 3 and task.error is not None
    assert "flaky failure on attempt 3" in task.error["message"]
    errors = [r for r in await assert_gap_free(db, task_id) if r["event_type"] == "error"]
    assert [e["data"]["retrying"] for e in errors] == [True, True, False]
    # dead letter: listed, re-queued, and this time it succeeds
    assert task_id in {t.id for t in await repo.list_tasks(TENANT, status=TaskStatus.FAILED)}
    await db.execute("UPDATE todolist SET input = '{}' WHERE id = $1", task_id)
    requeued = await repo.requeue(TENANT, task_id)
    assert requeued.status is TaskStatus.PENDING and requeued.attempts == 0
    await wait_status(repo, task_id, TaskStatus.DONE)
    await assert_gap_free(db, task_id)


PICKUP_SLACK = 1.0
"""Seconds a due task may wait for its claim: the fallback poll (0.2 s in these tests) plus
the delays of a loaded machine."""


async def test_cancel_reaches_a_running_executor_promptly(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    """The executor is quiet (30 s between events) and heartbeats are 20 s apart: only the
    cancellation's notification can stop it this soon."""
    worker = await start_worker({"slow": ex.SlowExecutor()}, lease_seconds=60.0)
    task_id = await submit(repo, "slow", input={"steps": 1000, "delay": 30})
    await wait_until(lambda: str(task_id) in ex.SlowExecutor.started)
    await wait_until(
        lambda: db.fetchval("SELECT last_seq = 1 FROM todolist WHERE id = $1", task_id)
    )
    t0 = time.monotonic()
    cancelled = await repo.cancel(TENANT, task_id)
    assert cancelled.status is TaskStatus.CANCELLED
    await wait_until(lambda: str(task_id) in ex.SlowExecutor.cancelled, timeout=10)
    assert ex.SlowExecutor.cancelled[str(task_id)] - t0 < 5.0
    # The run is over: it can queue nothing more, and what it queued before is fenced out.
    await wait_until(lambda: worker.stats["cancelled"] == 1 and worker.running == 0)
    rows = await assert_gap_free(db, task_id)
    assert rows[-1]["event_type"] == "task_cancelled"
    assert (await repo.get(TENANT, task_id)).status is TaskStatus.CANCELLED
    with pytest.raises(InvalidTransition):
        await repo.cancel(TENANT, task_id)


async def test_human_input_round_trip(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    await start_worker({"ask": ex.AskingExecutor()})
    task_id = await submit(repo, "ask")
    await wait_status(repo, task_id, TaskStatus.INPUT_REQUIRED)
    task = await repo.get(TENANT, task_id)
    assert task.consumer is None and task.lease_until is None
    await repo.answer(TENANT, task_id, "blue")
    await wait_status(repo, task_id, TaskStatus.DONE)
    assert (await repo.get(TENANT, task_id)).output == {"colour": "blue"}
    rows = await assert_gap_free(db, task_id)
    types = [r["event_type"] for r in rows]
    assert types == ["human_asked", "human_response", "crew_completed"]


async def test_lost_lease_fences_out_the_old_owner(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    worker = await start_worker({"slow": ex.SlowExecutor()})
    task_id = await submit(repo, "slow", input={"steps": 1000, "delay": 0.02})
    await wait_until(
        lambda: db.fetchval("SELECT last_seq > 0 FROM todolist WHERE id = $1", task_id)
    )
    # Another worker takes the task over (as after an expired lease): new fence, its own lease.
    seq_at_takeover = await db.fetchval(
        "UPDATE todolist SET fence = fence + 1, consumer = 'thief',"
        " lease_until = now() + interval '1 hour' WHERE id = $1 RETURNING last_seq",
        task_id,
    )
    await wait_until(lambda: str(task_id) in ex.SlowExecutor.cancelled, timeout=10)
    # The old run is over: it can queue nothing more, and whatever it queued was refused.
    await wait_until(lambda: worker.stats["lease_lost"] == 1 and worker.running == 0)
    later = await db.fetchval(
        "SELECT count(*) FROM events WHERE todo_id = $1 AND seq > $2", task_id, seq_at_takeover
    )
    assert later == 0
    task = await repo.get(TENANT, task_id)
    assert task.status is TaskStatus.IN_PROGRESS and task.consumer == "thief"


class _BlockingUntilReleased(AgentExecutor):
    """Blocks its thread until the test releases it (``blocking = True``: run in a thread)."""

    blocking = True

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.started.set()
        self.release.wait(timeout=60)  # blocks the thread, as sync code would
        await ex.NoopExecutor().execute(context, event_queue)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.release.set()


async def test_blocking_executor_runs_off_the_event_loop(
    repo: TaskRepository, start_worker: StartWorker
) -> None:
    blocking = _BlockingUntilReleased()
    await start_worker({"block": blocking, "noop": ex.NoopExecutor()}, concurrency=4)
    try:
        blocked = await submit(repo, "block")
        await wait_until(blocking.started.is_set)
        quick = await submit(repo, "noop")
        await wait_status(repo, quick, TaskStatus.DONE)
        # not stuck behind the blocked thread, which is still blocked
        assert (await repo.get(TENANT, blocked)).status is TaskStatus.IN_PROGRESS
    finally:
        blocking.release.set()
    await wait_status(repo, blocked, TaskStatus.DONE)


async def test_graceful_stop_hands_running_tasks_back_without_using_an_attempt(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    worker = await start_worker({"slow": ex.SlowExecutor()}, shutdown_grace=0.2)
    task_id = await submit(repo, "slow", input={"steps": 1000, "delay": 0.02})
    await wait_until(lambda: str(task_id) in ex.SlowExecutor.started)
    worker.stop()
    await wait_status(repo, task_id, TaskStatus.PENDING, timeout=5)
    task = await repo.get(TENANT, task_id)
    assert task.attempts == 0 and task.consumer is None
    rows = await assert_gap_free(db, task_id)
    assert rows[-1]["event_type"] == "task_requeued"
    assert rows[-1]["data"]["reason"] == "shutdown"


async def test_expired_lease_is_recovered_by_another_worker(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    task_id = await submit(repo, "noop")
    # A crashed worker's claim: running, lease already expired.
    await db.execute(
        "UPDATE todolist SET status = 'IN_PROGRESS', consumer = 'dead', fence = fence + 1, "
        "attempts = 1, lease_until = now() - interval '1 second' WHERE id = $1",
        task_id,
    )
    await start_worker({"noop": ex.NoopExecutor()})
    await wait_status(repo, task_id, TaskStatus.DONE)
    task = await repo.get(TENANT, task_id)
    assert task.attempts == 2
    types = [r["event_type"] for r in await assert_gap_free(db, task_id)]
    assert types[0] == "task_requeued"


async def test_submission_rules(repo: TaskRepository, db: Database) -> None:
    with pytest.raises(UnknownAgent):
        await repo.submit(TENANT, TaskSubmission(agent_orch="nobody"))
    assert await db.fetchval("SELECT count(*) FROM todolist") == 0
    first = await submit(repo, "noop", idempotency_key="k-1")
    again, created = await repo.submit(
        TENANT,
        TaskSubmission(agent_orch="noop", query="other", idempotency_key="k-1"),
        known_agents=frozenset({"noop"}),
    )
    assert again.id == first and not created
    assert await db.fetchval("SELECT count(*) FROM todolist") == 1


async def test_priority_then_age(
    repo: TaskRepository, start_worker: StartWorker, db: Database
) -> None:
    low = await submit(repo, "noop", priority=0)
    high = await submit(repo, "noop", priority=5)
    later_run = await submit(repo, "noop", priority=9)
    await db.execute(
        "UPDATE todolist SET run_at = now() + $2::interval WHERE id = $1",
        later_run,
        timedelta(seconds=0.6),
    )
    await start_worker({"noop": ex.NoopExecutor()}, concurrency=1)
    for task_id in (high, low, later_run):
        await wait_status(repo, task_id, TaskStatus.DONE)
    started = {t: (await repo.get(TENANT, t)).started_at for t in (low, high, later_run)}
    assert started[high] < started[low] < started[later_run]  # type: ignore[operator]


async def test_worker_runs_on_connections_of_its_own(db: Database, repo: TaskRepository) -> None:
    """The worker's statements never wait for the caller's pool (the API's, in `processgpt
    up`): with every connection of that pool held elsewhere, tasks still run to DONE."""
    caller = await Database.connect(db.dsn, min_size=1, max_size=1)
    worker = Worker(caller, {"noop": A2ATaskRunner(ex.NoopExecutor())}, WorkerOptions())
    running: asyncio.Task[None] | None = None
    try:
        async with caller.pool.acquire():  # the caller's only connection, busy meanwhile
            running = asyncio.create_task(worker.run())
            await asyncio.wait_for(worker.started.wait(), 10)
            ids = [await submit(repo, "noop") for _ in range(5)]
            for task_id in ids:
                await wait_status(repo, task_id, TaskStatus.DONE)
    finally:
        worker.stop()
        if running is not None:
            await asyncio.wait_for(running, 30)
        await caller.close()


async def test_a_backlog_is_claimed_by_overlapping_claims_within_the_concurrency(
    db: Database, start_worker: StartWorker
) -> None:
    """While a backlog lasts, two claims are under way at once, so the tasks of one run
    while the next one's round trip is under way; yet no more executors run at once than
    the worker's concurrency."""
    await db.execute(
        "INSERT INTO todolist (tenant_id, agent_orch) SELECT 'default', 'counted'"
        " FROM generate_series(1, 60)"
    )
    counted = ex.CountingExecutor()
    worker = await start_worker({"counted": counted}, concurrency=6)
    real_claim = worker._queries.claim
    under_way = most_under_way = 0

    async def counted_claim(*args: Any) -> Any:
        nonlocal under_way, most_under_way
        under_way += 1
        most_under_way = max(most_under_way, under_way)
        try:
            return await real_claim(*args)
        finally:
            under_way -= 1

    worker._queries.claim = counted_claim  # type: ignore[method-assign]
    await wait_until(
        lambda: db.fetchval("SELECT count(*) = 60 FROM todolist WHERE status = 'DONE'"), 15
    )
    assert counted.finished == 60
    assert counted.most_running == 6
    assert most_under_way == 2


async def test_a_delayed_task_starts_when_due_though_other_work_came_meanwhile(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    """The claim that finds nothing due yet sets the next poll to the delayed task's run_at;
    a claim made meanwhile for other work does not push that deadline back to the (long)
    poll interval."""
    worker = await start_worker({"noop": ex.NoopExecutor()}, poll_interval=10.0)
    real_lookup = worker._queries.seconds_until_next_run
    looked_up: list[float | None] = []

    async def observed_lookup(*args: Any) -> float | None:
        seconds = await real_lookup(*args)
        looked_up.append(seconds)
        return seconds

    worker._queries.seconds_until_next_run = observed_lookup  # type: ignore[method-assign]
    # Its NOTIFY makes the worker look; the claim finds nothing due yet and looks up when
    # the delayed task is due.
    delayed = await submit(repo, "noop", run_at=datetime.now(UTC) + timedelta(seconds=0.5))
    await wait_until(lambda: any(s is not None for s in looked_up))
    other = await submit(repo, "noop")  # a claim for this one comes back neither full nor empty
    await wait_status(repo, other, TaskStatus.DONE)
    await wait_status(repo, delayed, TaskStatus.DONE, timeout=15)
    due_at, started = await db.fetchrow(
        "SELECT run_at, started_at FROM todolist WHERE id = $1", delayed
    )
    assert 0 <= (started - due_at).total_seconds() < PICKUP_SLACK  # not at the next poll (10 s)


async def test_an_agent_limit_holds_across_workers(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    """Two workers of five slots each, an agent limited to three running tasks: never more
    than three run at once, and the workers claim again as each task's end is written (the
    fallback poll is too slow to finish the work in time)."""
    counting = ex.CountingExecutor()
    for _ in range(2):
        await start_worker(
            {"count": counting}, concurrency=5, poll_interval=30.0, agent_max_running={"count": 3}
        )
    ids = [await submit(repo, "count") for _ in range(30)]
    for task_id in ids:
        await wait_status(repo, task_id, TaskStatus.DONE, timeout=20.0)
    assert counting.finished == 30
    assert counting.most_running == 3

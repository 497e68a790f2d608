"""The worker's batch writer against a real database: how it reports the end of an attempt."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import asyncpg
import pytest

from processgpt.db.database import Database
from processgpt.db.worker_queries import EventRow, TaskWrite, WorkerQueries
from processgpt.domain.task import TaskStatus
from processgpt.runtime.writer import BatchWriter, WriteOutcome
from tests.support import wait_until

Outcomes = list[tuple[uuid.UUID, WriteOutcome]]


async def _claim(queries: WorkerQueries, db: Database, n: int) -> list[tuple[uuid.UUID, int]]:
    await db.execute(
        "INSERT INTO todolist (tenant_id, agent_orch) SELECT 'default', 'demo'"
        " FROM generate_series(1, $1)",
        n,
    )
    rows = await queries.claim(["demo"], n, "w", 30.0)
    return [(r.id, r.fence) for r in rows]


def _last_events(first_seq: int = 1) -> list[EventRow]:
    return [
        EventRow(first_seq, "job", "task_working", None, None, '"last words"'),
        EventRow(first_seq + 1, "CREW_FINISHED", "crew_completed", "crew", None, "{}"),
    ]


def _finish(
    writer: BatchWriter, task_id: uuid.UUID, fence: int, outcomes: Outcomes | Callable[..., None]
) -> None:
    writer.finish(
        task_id,
        fence,
        TaskStatus.DONE,
        final_events=_last_events(),
        output_json='"ok"',
        on_done=outcomes
        if callable(outcomes)
        else lambda outcome: outcomes.append((task_id, outcome)),
    )


async def _events(db: Database, task_id: uuid.UUID) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events WHERE todo_id = $1", task_id))


async def _waiting_for_a_lock(db: Database) -> bool:
    """Whether a statement on the test's database waits for a lock another one holds."""
    return bool(
        await db.fetchval(
            "SELECT count(*) > 0 FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


async def test_the_end_of_an_attempt_is_reported_once_written_or_fenced_out(
    db: Database,
) -> None:
    queries = WorkerQueries(db)
    (kept, kept_fence), (lost, lost_fence) = await _claim(queries, db, 2)
    # The second task was taken over (as after an expired lease): its fence moved on.
    await db.execute("UPDATE todolist SET fence = fence + 1 WHERE id = $1", lost)
    refused: list[tuple[uuid.UUID, int]] = []
    writer = BatchWriter(queries, on_refused=lambda *attempt: refused.append(attempt))
    outcomes: Outcomes = []
    running = asyncio.create_task(writer.run())
    _finish(writer, kept, kept_fence, outcomes)
    _finish(writer, lost, lost_fence, outcomes)
    await wait_until(lambda: len(outcomes) == 2)
    writer.close()
    await running

    assert sorted(outcomes) == sorted(
        [(kept, WriteOutcome.WRITTEN), (lost, WriteOutcome.FENCED_OUT)]
    )
    assert refused == [(lost, lost_fence)]
    statuses = dict(await db.fetch("SELECT id, status FROM todolist"))
    assert statuses == {kept: "DONE", lost: "IN_PROGRESS"}
    assert await _events(db, kept) == 2 and await _events(db, lost) == 0


async def test_a_new_attempt_of_the_same_task_is_kept_apart_from_the_refused_old_one(
    db: Database,
) -> None:
    """The same worker claims a task again (its lease had expired) while the earlier attempt's
    last write still waits in the writer: the old write is refused, the new one is not."""
    queries = WorkerQueries(db)
    [(task_id, old_fence)] = await _claim(queries, db, 1)
    await db.execute("UPDATE todolist SET fence = fence + 1 WHERE id = $1", task_id)
    new_fence = old_fence + 1
    refused: list[tuple[uuid.UUID, int]] = []
    writer = BatchWriter(queries, on_refused=lambda *attempt: refused.append(attempt))
    outcomes: list[tuple[int, WriteOutcome]] = []
    _finish(writer, task_id, old_fence, lambda o: outcomes.append((old_fence, o)))
    writer.append_event(
        task_id, new_fence, EventRow(1, "job", "task_working", None, None, '"new attempt"')
    )
    writer.finish(
        task_id,
        new_fence,
        TaskStatus.DONE,
        final_events=[EventRow(2, "CREW_FINISHED", "crew_completed", "crew", None, "{}")],
        output_json='"new"',
        on_done=lambda o: outcomes.append((new_fence, o)),
    )
    running = asyncio.create_task(writer.run())
    await wait_until(lambda: len(outcomes) == 2)
    writer.close()
    await running

    assert sorted(outcomes) == [
        (old_fence, WriteOutcome.FENCED_OUT),
        (new_fence, WriteOutcome.WRITTEN),
    ]
    assert refused == [(task_id, old_fence)]
    row = await db.fetchrow("SELECT status, output, last_seq FROM todolist WHERE id = $1", task_id)
    assert row is not None and (row["status"], row["output"], row["last_seq"]) == ("DONE", "new", 2)


async def test_a_batch_whose_earlier_run_commits_meanwhile_is_written_once(db: Database) -> None:
    """A batch is run again when its connection dropped with the commit in doubt; the earlier
    run may still be committing. The new run waits for its rows, then finds its own events."""
    queries = WorkerQueries(db)
    [(task_id, fence)] = await _claim(queries, db, 1)
    write = TaskWrite(
        task_id, fence, events=_last_events(), status=TaskStatus.DONE, output_json='"ok"'
    )
    earlier = await asyncpg.connect(db.dsn)
    try:
        in_doubt = earlier.transaction()
        await in_doubt.start()
        await WorkerQueries(earlier).apply_batch([write])  # type: ignore[arg-type]
        writer = BatchWriter(queries, on_refused=lambda *_: None)
        outcomes: Outcomes = []
        running = asyncio.create_task(writer.run())
        _finish(writer, task_id, fence, outcomes)
        await wait_until(lambda: _waiting_for_a_lock(db))
        assert outcomes == []  # waiting for the earlier run's row lock
        await in_doubt.commit()
        await wait_until(lambda: outcomes)
        writer.close()
        await running
    finally:
        await earlier.close()

    assert outcomes == [(task_id, WriteOutcome.WRITTEN)]
    assert await _events(db, task_id) == 2
    assert await db.fetchval("SELECT status FROM todolist WHERE id = $1", task_id) == "DONE"


async def test_a_failing_callback_is_logged_and_the_writer_goes_on(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    queries = WorkerQueries(db)
    (first, first_fence), (second, second_fence) = await _claim(queries, db, 2)
    writer = BatchWriter(queries, on_refused=lambda *_: None)
    outcomes: Outcomes = []

    def broken(outcome: WriteOutcome) -> None:
        raise RuntimeError("bug in the callback")

    running = asyncio.create_task(writer.run())
    with caplog.at_level(logging.ERROR, logger="processgpt.runtime.writer"):
        _finish(writer, first, first_fence, broken)
        await wait_until(lambda: writer.idle and writer.batches >= 1)
        _finish(writer, second, second_fence, outcomes)
        await wait_until(lambda: outcomes)
    writer.close()
    await running

    assert outcomes == [(second, WriteOutcome.WRITTEN)]
    assert any("callback failed" in r.getMessage() for r in caplog.records)
    assert await db.fetchval("SELECT count(*) FROM todolist WHERE status = 'DONE'") == 2


async def test_a_write_the_database_refuses_fails_its_task_alone(db: Database) -> None:
    """A value the database refuses (a bug upstream) fails that task, with an error event
    numbered after its log, not the tasks written in the same batch."""
    queries = WorkerQueries(db)
    (bad, bad_fence), (good, good_fence) = await _claim(queries, db, 2)
    refused: list[tuple[uuid.UUID, int]] = []
    writer = BatchWriter(queries, on_refused=lambda *attempt: refused.append(attempt))
    outcomes: Outcomes = []
    writer.append_event(bad, bad_fence, EventRow(1, "job", "task_working", None, None, '"ok"'))
    writer.finish(
        bad,
        bad_fence,
        TaskStatus.DONE,
        final_events=[EventRow(2, "job", "task_working", None, None, "{not json")],
        on_done=lambda outcome: outcomes.append((bad, outcome)),
    )
    _finish(writer, good, good_fence, outcomes)
    running = asyncio.create_task(writer.run())
    await wait_until(lambda: len(outcomes) == 2)
    writer.close()
    await running

    assert sorted(outcomes) == sorted([(bad, WriteOutcome.REFUSED), (good, WriteOutcome.WRITTEN)])
    assert refused == [(bad, bad_fence)]
    row = await db.fetchrow("SELECT status, error, last_seq FROM todolist WHERE id = $1", bad)
    assert row is not None and row["status"] == "FAILED"
    error = {"code": "storage_error", "message": "the task's events could not be stored "}
    assert row["error"]["code"] == error["code"]
    assert row["error"]["message"].startswith(error["message"])
    events = await db.fetch(
        "SELECT seq, job_id, event_type, crew_type, data FROM events WHERE todo_id = $1",
        bad,
    )
    # none of the refused write's events; the failure numbered after the log (empty here)
    assert [tuple(e.values())[:4] for e in events] == [(1, "TASK_ERROR", "error", "agent")]
    assert events[0]["data"] == {**row["error"], "retrying": False}
    assert row["last_seq"] == 1
    assert await db.fetchval("SELECT status FROM todolist WHERE id = $1", good) == "DONE"

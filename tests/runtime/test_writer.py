"""The worker's batch writer against a real database: how it reports the end of an attempt."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from processgpt.db.database import Database
from processgpt.db.worker_queries import EventRow, WorkerQueries
from processgpt.domain.task import TaskStatus
from processgpt.runtime.writer import BatchWriter
from tests.support import wait_until


async def _claim(queries: WorkerQueries, db: Database, n: int) -> list[tuple[uuid.UUID, int]]:
    await db.execute(
        "INSERT INTO todolist (tenant_id, agent_orch) SELECT 'default', 'demo'"
        " FROM generate_series(1, $1)",
        n,
    )
    rows = await queries.claim(["demo"], n, "w", 30.0)
    return [(r["id"], int(r["fence"])) for r in rows]


def _finish(writer: BatchWriter, task_id: uuid.UUID, fence: int, on_done: object) -> None:
    writer.finish(
        task_id,
        fence,
        TaskStatus.DONE,
        final_events=[EventRow(1, "job", "crew_completed", "crew", None, "{}")],
        output_json='"ok"',
        on_done=on_done,  # type: ignore[arg-type]
    )


async def test_the_end_of_an_attempt_is_reported_once_durable_or_refused(db: Database) -> None:
    queries = WorkerQueries(db)
    (kept, kept_fence), (lost, lost_fence) = await _claim(queries, db, 2)
    # The second task was taken over (as after an expired lease): its fence moved on.
    await db.execute("UPDATE todolist SET fence = fence + 1 WHERE id = $1", lost)
    lease_lost: list[uuid.UUID] = []
    writer = BatchWriter(queries, on_lease_lost=lease_lost.append)
    reported: dict[uuid.UUID, bool] = {}

    def on_done_for(task_id: uuid.UUID) -> object:
        return lambda durable: reported.__setitem__(task_id, durable)

    running = asyncio.create_task(writer.run())
    _finish(writer, kept, kept_fence, on_done_for(kept))
    _finish(writer, lost, lost_fence, on_done_for(lost))
    await wait_until(lambda: len(reported) == 2)
    writer.close()
    await running

    assert reported == {kept: True, lost: False}
    assert lease_lost == [lost]
    statuses = dict(await db.fetch("SELECT id, status FROM todolist"))
    assert statuses == {kept: "DONE", lost: "IN_PROGRESS"}
    assert await db.fetchval("SELECT count(*) FROM events WHERE todo_id = $1", lost) == 0


async def test_a_failing_callback_is_logged_and_the_writer_goes_on(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    queries = WorkerQueries(db)
    (first, first_fence), (second, second_fence) = await _claim(queries, db, 2)
    writer = BatchWriter(queries, on_lease_lost=lambda _: None)
    done: list[uuid.UUID] = []

    def broken(durable: bool) -> None:
        raise RuntimeError("bug in the callback")

    running = asyncio.create_task(writer.run())
    with caplog.at_level(logging.ERROR, logger="processgpt.runtime.writer"):
        _finish(writer, first, first_fence, broken)
        await wait_until(lambda: writer.idle and writer.batches >= 1)
        _finish(writer, second, second_fence, lambda durable: done.append(second))
        await wait_until(lambda: done == [second])
    writer.close()
    await running

    assert any("callback failed" in r.getMessage() for r in caplog.records)
    assert await db.fetchval("SELECT count(*) FROM todolist WHERE status = 'DONE'") == 2

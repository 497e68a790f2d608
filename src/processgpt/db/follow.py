"""Follow a task's event log live: replay from a sequence number, then wait for NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from processgpt.db.database import Database
from processgpt.db.listen import Listener
from processgpt.db.tasks import TaskRepository
from processgpt.domain.events import Event
from processgpt.domain.task import TaskStatus


async def follow_task(
    db: Database,
    tenant_id: str,
    task_id: uuid.UUID,
    *,
    after: int = 0,
    until: frozenset[TaskStatus] = frozenset(
        {TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.INPUT_REQUIRED}
    ),
    poll_interval: float = 5.0,
) -> AsyncIterator[Event]:
    """Yield the task's events after ``after``, in order, without gaps or repeats, until the
    task is in one of ``until`` and every event up to its last one was yielded."""
    repo = TaskRepository(db)
    wake = asyncio.Event()

    def on_events(payload: str) -> None:
        if str(task_id) in payload:
            wake.set()

    listener = Listener(db.dsn)
    listener.subscribe("processgpt_events", on_events)
    listener.on_reconnect(wake.set)
    listening = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), timeout=30)
        while True:
            wake.clear()
            task = await repo.get(tenant_id, task_id)
            while after < task.last_seq:
                page = await repo.events(tenant_id, task_id, after=after, limit=500)
                if not page:
                    break
                for event in page:
                    yield event
                after = page[-1].seq
            if task.status in until and after >= task.last_seq:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=poll_interval)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)

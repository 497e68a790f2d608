"""Follow one task's event log from a process that has no event hub of its own (the CLI,
the Python API): a private hub for the duration of the iteration."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from processgpt.db.database import Database
from processgpt.db.hub import EventHub
from processgpt.domain.events import Event
from processgpt.domain.task import TaskStatus

UNTIL_SETTLED = frozenset(
    {TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.INPUT_REQUIRED}
)


async def follow_task(
    db: Database,
    tenant_id: str,
    task_id: uuid.UUID,
    *,
    after: int = 0,
    until: frozenset[TaskStatus] = UNTIL_SETTLED,
) -> AsyncIterator[Event]:
    """Yield the task's events after ``after``, in order, without gaps or repeats, until the
    task is in one of ``until`` and every event up to its last one was yielded."""
    hub = EventHub(db)
    listening = asyncio.create_task(hub.run())
    try:
        await asyncio.wait_for(hub.listener.connected.wait(), timeout=30)
        async for item in hub.follow(
            tenant_id, task_id, after=after, until=until, idle_timeout=5.0
        ):
            if isinstance(item, Event):
                yield item
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)

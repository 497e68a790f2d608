"""Live delivery for API processes: one LISTEN connection fans out to every follower.

The workers' batch commits NOTIFY ``processgpt_events`` with ``<todo id>:<last seq>,…``; the hub
wakes the followers of those tasks. A wake-up is a flag, not a queue: however many
notifications arrive, a follower holds one pending wake-up and re-reads the log from its
cursor, so memory per follower is bounded and nothing is lost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from processgpt.db.database import Database
from processgpt.db.listen import Listener
from processgpt.db.tasks import TaskRepository
from processgpt.domain.events import Event
from processgpt.domain.task import Task, TaskStatus

TERMINAL = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED})


class EventHub:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tasks = TaskRepository(db)
        self.listener = Listener(db.dsn)
        self.listener.subscribe("processgpt_events", self._on_events)
        self.listener.on_reconnect(self._wake_all)
        self._followers: dict[str, set[asyncio.Event]] = {}

    async def run(self) -> None:
        await self.listener.run()

    @property
    def followers(self) -> int:
        return sum(len(s) for s in self._followers.values())

    def _on_events(self, payload: str) -> None:
        for item in payload.split(","):
            task_id, _, _ = item.partition(":")
            for wake in self._followers.get(task_id, ()):
                wake.set()

    def _wake_all(self) -> None:
        for followers in self._followers.values():
            for wake in followers:
                wake.set()

    @contextmanager
    def _watch(self, task_id: uuid.UUID) -> Iterator[asyncio.Event]:
        key = str(task_id)
        wake = asyncio.Event()
        self._followers.setdefault(key, set()).add(wake)
        try:
            yield wake
        finally:
            followers = self._followers.get(key)
            if followers is not None:
                followers.discard(wake)
                if not followers:
                    del self._followers[key]

    async def follow(
        self,
        tenant_id: str,
        task_id: uuid.UUID,
        *,
        after: int = 0,
        until: frozenset[TaskStatus] = TERMINAL,
        idle_timeout: float = 15.0,
    ) -> AsyncIterator[Event | Task | None]:
        """Yield the task's events after ``after`` in order, then the task itself once it is in
        one of ``until`` with every event delivered. Yields ``None`` after ``idle_timeout``
        seconds without news (a chance to send a heartbeat)."""
        with self._watch(task_id) as wake:
            while True:
                wake.clear()
                task = await self.tasks.get(tenant_id, task_id)
                while after < task.last_seq:
                    page = await self.tasks.events(tenant_id, task_id, after=after, limit=500)
                    if not page:
                        break
                    for event in page:
                        yield event
                    after = page[-1].seq
                    if after >= task.last_seq:
                        task = await self.tasks.get(tenant_id, task_id)
                if task.status in until and after >= task.last_seq:
                    yield task
                    return
                try:
                    await asyncio.wait_for(wake.wait(), timeout=idle_timeout)
                except TimeoutError:
                    yield None

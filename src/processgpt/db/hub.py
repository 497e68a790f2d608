"""Live delivery for API processes: one LISTEN connection fans out to every follower.

The workers' batch commits NOTIFY ``processgpt_events`` with
``<todo id>:<last seq>:<status>,…``; the hub wakes the followers of those tasks. A wake-up
is a flag, not a queue: however many notifications arrive, a follower holds one pending
wake-up and re-reads the log from its cursor, so memory per follower is bounded and nothing
is lost. Followers at the same position share one read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from processgpt.db.database import Database
from processgpt.db.listen import Listener
from processgpt.db.notifications import NOTIFICATIONS_CHANNEL
from processgpt.db.tasks import TaskRepository
from processgpt.domain.events import Event
from processgpt.domain.task import Task, TaskStatus

PROCESS_CHANNEL = "processgpt_process"
"""Every committed step of a process instance NOTIFYs ``<instance id>:<last history seq>:
<status>`` here (see :mod:`processgpt.runtime.process_service`)."""
_PROCESS_KEY = "process:"
_NOTIFICATIONS_KEY = "notifications:"

TERMINAL = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED})
_STATUSES = frozenset(s.value for s in TaskStatus)


class EventHub:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tasks = TaskRepository(db)
        self.listener = Listener(db.dsn)
        self.listener.subscribe("processgpt_events", self._on_events)
        self.listener.subscribe(PROCESS_CHANNEL, self._on_process)
        self.listener.subscribe(NOTIFICATIONS_CHANNEL, self._on_notifications)
        self.listener.on_reconnect(self._wake_all)
        self._followers: dict[str, set[asyncio.Event]] = {}
        self._reads: dict[tuple[object, ...], asyncio.Task[Any]] = {}
        # Newest (last seq, status) notified for each followed task: a wake-up then costs
        # one read of the new events, not a read of the task as well.
        self._heads: dict[str, tuple[int, str]] = {}

    async def get_task(self, tenant_id: str, task_id: uuid.UUID) -> Task:
        """The task, read once for all followers asking at the same moment."""
        task: Task = await self._shared(
            ("task", tenant_id, task_id), lambda: self.tasks.get(tenant_id, task_id)
        )
        return task

    async def events(
        self, tenant_id: str, task_id: uuid.UUID, *, after: int, limit: int = 500
    ) -> list[Event]:
        """A page of the log, read once for all followers at the same position: a wake-up
        costs one read per task, not one per follower."""
        page: list[Event] = await self._shared(
            ("events", tenant_id, task_id, after, limit),
            lambda: self.tasks.events(tenant_id, task_id, after=after, limit=limit),
        )
        return page

    async def _shared(self, key: tuple[object, ...], read: Callable[[], Awaitable[Any]]) -> Any:
        task = self._reads.get(key)
        if task is None:
            task = asyncio.ensure_future(read())
            self._reads[key] = task
            task.add_done_callback(lambda done: self._read_done(key, done))
        # A follower that goes away must not cancel the read the others wait for.
        return await asyncio.shield(task)

    def _read_done(self, key: tuple[object, ...], task: asyncio.Task[Any]) -> None:
        if self._reads.get(key) is task:
            del self._reads[key]
        if not task.cancelled():
            task.exception()  # raised to every waiter; marked seen if they all left

    async def run(self) -> None:
        try:
            await self.listener.run()
        finally:
            for read in list(self._reads.values()):
                read.cancel()

    @property
    def followers(self) -> int:
        return sum(len(s) for s in self._followers.values())

    def _on_events(self, payload: str) -> None:
        for item in payload.split(","):
            task_id, _, head = item.partition(":")
            followers = self._followers.get(task_id)
            if not followers:
                continue
            seq, _, status = head.partition(":")
            if seq.isdigit() and status in _STATUSES:
                known = self._heads.get(task_id)
                if known is None or int(seq) >= known[0]:
                    self._heads[task_id] = (int(seq), status)
            for wake in followers:
                wake.set()

    def _on_process(self, payload: str) -> None:
        for item in payload.split(","):
            proc_inst_id, _, _head = item.partition(":")
            for wake in self._followers.get(_PROCESS_KEY + proc_inst_id, ()):
                wake.set()

    def _on_notifications(self, payload: str) -> None:
        for wake in self._followers.get(_NOTIFICATIONS_KEY + payload, ()):
            wake.set()

    def _wake_all(self) -> None:
        self._heads.clear()  # notifications may have been missed: followers read afresh
        for followers in self._followers.values():
            for wake in followers:
                wake.set()

    @contextmanager
    def _watch(self, task_id: uuid.UUID) -> Iterator[asyncio.Event]:
        with self.watch(task_id, asyncio.Event()) as wake:
            yield wake

    @contextmanager
    def watch(self, task_id: uuid.UUID, wake: asyncio.Event) -> Iterator[asyncio.Event]:
        """Set ``wake`` whenever the task's log may have grown (and when the listener
        reconnects) while the block runs. One event may watch several tasks."""
        with self._watch_key(str(task_id), wake):
            yield wake

    @contextmanager
    def watch_process(
        self, proc_inst_id: uuid.UUID, wake: asyncio.Event
    ) -> Iterator[asyncio.Event]:
        """Set ``wake`` whenever a step of the process instance committed (its history may
        have grown), and when the listener reconnects, while the block runs."""
        with self._watch_key(_PROCESS_KEY + str(proc_inst_id), wake):
            yield wake

    @contextmanager
    def watch_notifications(self, tenant_id: str, wake: asyncio.Event) -> Iterator[asyncio.Event]:
        """Set ``wake`` whenever notifications of the tenant committed, and when the
        listener reconnects, while the block runs."""
        with self._watch_key(_NOTIFICATIONS_KEY + tenant_id, wake):
            yield wake

    @contextmanager
    def _watch_key(self, key: str, wake: asyncio.Event) -> Iterator[None]:
        self._followers.setdefault(key, set()).add(wake)
        try:
            yield
        finally:
            followers = self._followers.get(key)
            if followers is not None:
                followers.discard(wake)
                if not followers:
                    del self._followers[key]
                    self._heads.pop(key, None)

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
        key = str(task_id)
        with self._watch(task_id) as wake:
            fresh = True
            while True:
                wake.clear()
                head = None if fresh else self._heads.get(key)
                if head is None:
                    task = await self.get_task(tenant_id, task_id)
                    last_seq, status = task.last_seq, task.status
                else:
                    last_seq, status = head[0], TaskStatus(head[1])
                fresh = False
                while after < last_seq:
                    page = await self.events(tenant_id, task_id, after=after, limit=500)
                    if not page:
                        break
                    for event in page:
                        yield event
                    after = page[-1].seq
                if status in until and after >= last_seq:
                    task = await self.get_task(tenant_id, task_id)  # the final row, fresh
                    if task.status in until and after >= task.last_seq:
                        yield task
                        return
                    fresh = True
                    continue
                try:  # not wait_for: on Python 3.11 it can swallow a cancellation
                    async with asyncio.timeout(idle_timeout):
                        await wake.wait()
                except TimeoutError:
                    fresh = True  # a safety net for anything a notification did not say
                    yield None

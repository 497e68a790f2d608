"""The loops a worker runs beside its tasks: process timers, schedules, webhook deliveries,
retention, the learning step and re-embedding. Each is one background block (see
:mod:`~processgpt.runtime.background`) woken by its NOTIFY channel and by listener reconnects;
a loop the options switch off is a block that does nothing. They run on the worker's own
pool, except retention (a pass holds a connection for its whole length, which must never be
one the claims, the writer or the heartbeats wait for: it uses the caller's pool)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from processgpt.db.database import Database
from processgpt.db.listen import Listener
from processgpt.db.process_instances import ProcessInstances
from processgpt.db.retention import RetentionRepository
from processgpt.db.schedules import SCHEDULES_CHANNEL, ScheduleRepository
from processgpt.db.tasks import PendingGate, TaskRepository
from processgpt.db.webhooks import WEBHOOKS_CHANNEL
from processgpt.db.worker_queries import WorkerQueries
from processgpt.files.storage import FileStorage
from processgpt.runtime.background import background
from processgpt.runtime.process_service import ProcessService
from processgpt.runtime.retention import RetentionJob
from processgpt.runtime.schedules import ScheduleLoop
from processgpt.runtime.timers import TimerLoop
from processgpt.runtime.webhook_delivery import DeliveryLoop

if TYPE_CHECKING:
    from processgpt.runtime.worker import WorkerOptions

Block = contextlib.AbstractAsyncContextManager[Any]


class WorkerServices:
    """The loops of one running worker (built when its pool is open). The loops it started
    are kept as attributes, for tests and for waking them."""

    def __init__(
        self,
        db: Database,
        queries: WorkerQueries,
        options: WorkerOptions,
        *,
        make_webhooks: Callable[[Database], DeliveryLoop] | None,
        on_crash: Callable[[BaseException], None],
        file_storage: FileStorage | None = None,
    ) -> None:
        self._db = db
        self._pool = queries.db
        self._graphs = queries.graphs
        self._options = options
        self._make_webhooks = make_webhooks
        self._file_storage = file_storage
        self._on_crash = on_crash
        self.timers: TimerLoop | None = None
        self.schedules: ScheduleLoop | None = None
        self.webhooks: DeliveryLoop | None = None
        self.retention: RetentionJob | None = None

    def timer_block(self, listener: Listener) -> Block:
        """The process timer loop (idle when ``options.timers`` is off)."""
        instances = ProcessInstances(
            self._pool, settings=self._options.process_steps, graphs=self._graphs
        )
        timers = TimerLoop(instances.fire_due_timers, instances.seconds_until_next_timer)
        self.timers = timers
        if not self._options.timers:
            return background(_idle(), name="timers", on_crash=self._on_crash)
        listener.subscribe("processgpt_timers", lambda _payload: timers.wake())
        return background(timers.run(), name="timers", on_crash=self._on_crash)

    def other_blocks(self, listener: Listener) -> Block:
        """Schedules, webhooks, retention, learning and re-embedding, as one block (left in
        reverse)."""
        return _together(
            [
                self._schedule_block(listener),
                self._webhook_block(listener),
                self._retention_block(),
                self._learning_block(),
                self._reembedding_block(),
            ]
        )

    def _schedule_block(self, listener: Listener) -> Block:
        if not self._options.schedules:
            return contextlib.nullcontext()
        steps = self._options.process_steps
        processes = ProcessService(
            self._pool, judge_agent=steps.judge_agent, default_agent=steps.default_agent
        )
        tasks = TaskRepository(self._pool)
        loop = ScheduleLoop(
            ScheduleRepository(self._pool),
            tasks,
            processes,
            gate=PendingGate(tasks, self._options.max_pending_tasks),
        )
        listener.subscribe(SCHEDULES_CHANNEL, lambda _payload: loop.wake())
        listener.on_reconnect(loop.wake)
        self.schedules = loop
        return background(loop.run(), name="schedules", on_crash=self._on_crash)

    def _webhook_block(self, listener: Listener) -> Block:
        if self._make_webhooks is None:
            return contextlib.nullcontext()
        loop = self._make_webhooks(self._pool)
        listener.subscribe(WEBHOOKS_CHANNEL, lambda _payload: loop.wake())
        listener.on_reconnect(loop.wake)
        self.webhooks = loop
        return background(loop.run(), name="webhooks", on_crash=self._on_crash)

    def _retention_block(self) -> Block:
        if not self._options.retention.interval:
            return contextlib.nullcontext()
        self.retention = RetentionJob(
            RetentionRepository(self._db), self._options.retention, self._file_storage
        )
        return background(self.retention.loop(), name="retention", on_crash=self._on_crash)

    def _learning_block(self) -> Block:
        learning = self._options.learning
        if learning is None:
            return contextlib.nullcontext()
        return background(
            learning.run(), name="learning", finish=learning.stop, on_crash=self._on_crash
        )

    def _reembedding_block(self) -> Block:
        loop = self._options.reembedding
        if loop is None:
            return contextlib.nullcontext()
        return background(loop.run(), name="reembedding", finish=loop.stop, on_crash=self._on_crash)


@contextlib.asynccontextmanager
async def _together(blocks: list[Block]) -> AsyncIterator[None]:
    """Enter ``blocks`` in order; leave them in reverse."""
    async with contextlib.AsyncExitStack() as stack:
        for block in blocks:
            await stack.enter_async_context(block)
        yield


async def _idle() -> None:
    """Stands in for a loop the worker does not run."""
    await asyncio.Event().wait()

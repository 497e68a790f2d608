"""The worker: claims tasks, runs them concurrently, keeps their leases, and ends each attempt.

One :class:`Worker` per process serves one or more orchestrators (``agent_orch`` names) with
up to ``concurrency`` tasks at once. It composes the parts of the engine: the claim loop
(:mod:`~processgpt.runtime.claims`: woken by NOTIFY, polling only as a fallback), the leases
(:mod:`~processgpt.runtime.lease`: heartbeats, presence, recovery of expired leases), one
:class:`~processgpt.runtime.writer.BatchWriter` for every write, and the decision of how each
attempt ends (:mod:`~processgpt.runtime.attempt`). Beside them run process timers, schedules,
webhook deliveries, retention and learning (:mod:`~processgpt.runtime.worker_services`).
Its statements run on a small pool of its own, opened from the given database's DSN, with
plans made once per connection (:data:`~processgpt.db.worker_queries.SERVER_SETTINGS`).

Stopping (:meth:`Worker.stop`, wired to SIGTERM/SIGINT by the CLI) stops claiming, lets running
tasks finish within ``shutdown_grace`` seconds, then hands the rest back: PENDING at once, the
attempt not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from processgpt import logs, tracing
from processgpt.db.database import Database
from processgpt.db.listen import Listener
from processgpt.db.process_steps import StepSettings
from processgpt.db.retry import retry_transient
from processgpt.db.worker_queries import SERVER_SETTINGS, ClaimedTask, WorkerQueries
from processgpt.db.workers import WorkerIdentity, WorkerRegistry
from processgpt.domain.events import encode_json
from processgpt.domain.task import RetryPolicy
from processgpt.files.storage import FileStorage
from processgpt.metrics import TASKS, track_slots
from processgpt.runtime.attempt import AttemptEnd, RunResult, StopReason, end_of_attempt
from processgpt.runtime.background import background
from processgpt.runtime.claims import CLAIMS_IN_FLIGHT, ClaimLoop
from processgpt.runtime.learning import LearningLoop
from processgpt.runtime.lease import PRESENCE_INTERVAL, Lease, LeaseKeeper
from processgpt.runtime.memory_context import MemoryContext
from processgpt.runtime.reembedding import ReembedLoop
from processgpt.runtime.retention import RetentionJob, RetentionOptions
from processgpt.runtime.run import TaskRun, TaskRunner
from processgpt.runtime.run_trace import traced_run
from processgpt.runtime.schedules import ScheduleLoop
from processgpt.runtime.timers import TimerLoop
from processgpt.runtime.webhook_delivery import DeliveryLoop
from processgpt.runtime.worker_services import WorkerServices
from processgpt.runtime.writer import BatchWriter, WriteOutcome

log = logging.getLogger(__name__)


def default_consumer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 10
    lease_seconds: float = 30.0
    poll_interval: float = 1.0
    agent_max_running: Mapping[str, int] = field(default_factory=dict)
    """The most tasks of an orchestrator running at once across all workers (the same on
    every worker of a deployment: ``PROCESSGPT_AGENT_MAX_RUNNING``); absent: no limit."""
    shutdown_grace: float = 30.0
    flush_interval: float = 0.002
    cancel_timeout: float = 5.0
    presence_interval: float = PRESENCE_INTERVAL
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    consumer: str = field(default_factory=default_consumer)
    process_steps: StepSettings = field(default_factory=StepSettings)
    """Agents of process steps: the judge of text conditions, the default step agent."""
    timers: bool = True
    """Fire due process timers (a loop woken by NOTIFY processgpt_timers)."""
    memory: MemoryContext | None = None
    """Puts memory in each task's context and binds its memory tools (None: no memory)."""
    learning: LearningLoop | None = None
    """Turns queued feedback into memory in the background (None: not in this worker)."""
    reembedding: ReembedLoop | None = None
    """Re-embeds items stored with another embedding model (None: not in this worker)."""
    schedules: bool = True
    """Run the schedule loop (:mod:`~processgpt.runtime.schedules`): due schedules are
    fired by whichever worker claims them first."""
    retention: RetentionOptions = field(default_factory=RetentionOptions)
    """Expired finished work (:mod:`~processgpt.runtime.retention`): one pass at a time per
    deployment, every ``retention.interval`` seconds (0: not from this worker)."""
    max_pending_tasks: int = 10_000
    """The per-tenant pending limit (a tenant's own limit overrides it) that schedule ticks
    are held to, as API creates are."""


@dataclass(slots=True)
class _Active:
    run: TaskRun
    runner: TaskRunner
    claimed_at: float
    """The loop's clock when the claim returned (the run time's start)."""
    task: asyncio.Task[None] | None = None


class Worker:
    """Runs the tasks of the orchestrators in ``runners`` (``agent_orch`` → runner)."""

    def __init__(
        self,
        db: Database,
        runners: Mapping[str, TaskRunner],
        options: WorkerOptions | None = None,
        *,
        descriptions: Mapping[str, str] | None = None,
        webhooks: Callable[[Database], DeliveryLoop] | None = None,
        file_storage: FileStorage | None = None,
    ) -> None:
        """``webhooks``: makes the webhook delivery loop on the worker's pool (None: this
        worker sends no webhooks). ``file_storage``: where files' bytes are, for retention
        (the files of deleted work, and the orphan sweep)."""
        if not runners:
            raise ValueError("a worker needs at least one orchestrator to run")
        self.db = db
        self.options = opts = options or WorkerOptions()
        self._runners = dict(runners)
        self._descriptions = dict(descriptions or {})
        self._orchs = sorted(self._runners)
        # on the worker's own pool once run() opens it
        self._queries = WorkerQueries(db, step_settings=opts.process_steps)
        self._writer = BatchWriter(
            self._queries,
            on_refused=lambda tid, fence: self._stop_run(tid, StopReason.LEASE_LOST, fence),
            flush_interval=opts.flush_interval,
        )
        self._claims = ClaimLoop(
            self._queries,
            self._orchs,
            concurrency=opts.concurrency,
            consumer=opts.consumer,
            lease_seconds=opts.lease_seconds,
            poll_interval=opts.poll_interval,
            max_running=opts.agent_max_running,
            running=lambda: len(self._active),
            start=self._start_runs,
        )
        self.identity = WorkerIdentity.of_this_process(opts.consumer, self._orchs, opts.concurrency)
        """What the worker's ``workers`` row says about it."""
        self._registry = WorkerRegistry(db)  # on the worker's own pool once run() opens it
        self._leases = LeaseKeeper(
            self._queries,
            self._beat,
            lease_seconds=opts.lease_seconds,
            recovery_interval=opts.poll_interval,
            presence_interval=opts.presence_interval,
            held=self._held_leases,
            on_lost=lambda tid, fence: self._stop_run(tid, StopReason.LEASE_LOST, fence),
        )
        self._active: dict[uuid.UUID, _Active] = {}  # runs whose last write is not queued yet
        self._helpers: set[asyncio.Task[Any]] = set()  # executors' cancel() hooks under way
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._make_webhooks = webhooks
        self._file_storage = file_storage
        self._services: WorkerServices | None = None  # the loops beside the tasks, once run
        self.started = asyncio.Event()
        self.stats: dict[str, int] = {
            "claimed": 0,
            "done": 0,
            "failed": 0,
            "retried": 0,
            "handed_back": 0,
            "input_required": 0,
            "cancelled": 0,
            "lease_lost": 0,
            "claim_statements": 0,
        }

    # -- public ---------------------------------------------------------------------------

    @property
    def timers(self) -> TimerLoop | None:
        """The process timer loop, once :meth:`run` started it."""
        return self._services.timers if self._services is not None else None

    @property
    def schedule_loop(self) -> ScheduleLoop | None:
        """The schedule loop, once :meth:`run` started it."""
        return self._services.schedules if self._services is not None else None

    @property
    def webhooks(self) -> DeliveryLoop | None:
        """The webhook delivery loop, once :meth:`run` started it."""
        return self._services.webhooks if self._services is not None else None

    @property
    def retention(self) -> RetentionJob | None:
        """The retention job, once :meth:`run` started it."""
        return self._services.retention if self._services is not None else None

    def stop(self) -> None:
        """Begin a graceful stop (safe to call more than once)."""
        if not self._stopping:
            log.info(
                "worker stopping running=%d grace=%.1fs",
                len(self._active),
                self.options.shutdown_grace,
            )
        self._stopping = True
        self._stop_requested.set()
        self._claims.stop()

    @property
    def writer_batches(self) -> int:
        """Write statements (batches) the worker's writer has committed."""
        return self._writer.batches

    @property
    def running(self) -> int:
        """Runs holding a slot (an attempt whose last write is queued holds none)."""
        return len(self._active)

    @property
    def slots(self) -> int:
        """Tasks the worker runs at once at most (its concurrency)."""
        return self.options.concurrency

    async def run(self) -> None:
        """Serve until :meth:`stop`, then shut down gracefully and return.

        Raises what stopped it otherwise: a failed background task (after a graceful stop),
        or a bug in handling claimed tasks (at once: runs are cancelled, their leases expire).
        """
        # The worker's statements run on connections of their own: load on the caller's pool
        # (the API's, in `processgpt up`) can never hold up the writer or the heartbeats.
        # Connections are opened when first needed, so a server still starting is retried
        # like any other transient error.
        pool = await Database.connect(
            self.db.dsn, min_size=0, max_size=_POOL_SIZE, server_settings=SERVER_SETTINGS
        )
        self._queries.db = self._registry.db = pool
        untrack = track_slots(self)
        try:
            await self._serve()
        finally:
            untrack()
            await pool.close()

    async def _serve(self) -> None:
        listener = Listener(self.db.dsn)
        listener.subscribe("processgpt_tasks", self._on_task_notification)
        listener.subscribe("processgpt_control", self._on_control_notification)
        services = WorkerServices(
            self.db,
            self._queries,
            self.options,
            make_webhooks=self._make_webhooks,
            file_storage=self._file_storage,
            on_crash=self._on_background_crash,
        )
        self._services = services
        timers = services.timer_block(listener)
        listener.on_reconnect(self._on_reconnect)
        others = services.other_blocks(listener)
        await retry_transient(
            lambda: self._queries.register_orchestrators(
                {name: self._descriptions.get(name, "") for name in self._orchs}
            ),
            what="registering the orchestrators",
        )
        await retry_transient(self._beat, what="registering the worker")
        log.info(
            "worker started consumer=%s agents=%s concurrency=%d",
            self.options.consumer,
            ",".join(self._orchs),
            self.options.concurrency,
        )
        crashed = self._on_background_crash
        try:
            # Left in reverse order, which is the shutdown order: claiming has stopped; the
            # runs finish within the grace period and the rest are handed back; the writer
            # writes everything queued; then heartbeats (which keep the leases of runs being
            # handed back) and the listener (which delivers cancellations) stop.
            async with (
                background(listener.run(), name="listener", on_crash=crashed),
                self._leases.running(on_crash=crashed),
                background(
                    self._writer.run(), name="writer", finish=self._writer.close, on_crash=crashed
                ),
                timers,
                self._runs(),
                others,
            ):
                await self._listening(listener)
                self.started.set()
                await self._claims.run()  # returns once stop() was called
        finally:
            await self._deregister()
            log.info("worker stopped consumer=%s stats=%s", self.options.consumer, self.stats)

    async def _beat(self) -> None:
        """The worker's presence beat (see :mod:`~processgpt.runtime.lease`)."""
        await self._registry.beat(self.identity, len(self._active))

    async def _deregister(self) -> None:
        """Delete the worker's row; if that fails, the row shows as lost and is cleaned up
        by the other workers later (see :mod:`~processgpt.db.workers`)."""
        try:
            await asyncio.wait_for(self._registry.deregister(self.identity.id), _DEREGISTER_SECONDS)
        except Exception as exc:  # noqa: BLE001 - stopping anyway; the row will show as lost
            log.warning(
                "worker not deregistered consumer=%s error=%s", self.identity.id, type(exc).__name__
            )

    async def _listening(self, listener: Listener) -> None:
        """Wait until the listener is connected (at most 30 s), or until a stop is asked for:
        a worker told to stop while its first connection is being made stops at once instead
        of waiting for it."""
        connected = asyncio.ensure_future(listener.connected.wait())
        stopping = asyncio.ensure_future(self._stop_requested.wait())
        try:
            done, _ = await asyncio.wait(
                (connected, stopping), timeout=30, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            connected.cancel()
            stopping.cancel()
        if not done:
            raise TimeoutError("the notification listener did not connect within 30 s")

    def _on_background_crash(self, exc: BaseException) -> None:
        """A background loop failed (a bug; logged): stop serving, gracefully, so that the
        runs still end or are handed back; :meth:`run` then raises the error."""
        self.stop()

    # -- notifications ----------------------------------------------------------------------

    def _on_task_notification(self, payload: str) -> None:
        if payload in self._runners:
            self._claims.wake()

    def _on_control_notification(self, payload: str) -> None:
        action, _, rest = payload.partition(":")
        raw_id, _, raw_fence = rest.partition(":")
        if action != "cancel":
            return
        try:
            task_id, fence = uuid.UUID(raw_id), int(raw_fence)
        except ValueError:
            log.warning("malformed control notification payload=%r", payload[:100])
            return
        active = self._active.get(task_id)
        # A late notification must not stop a later claim of the same task.
        if active is not None and active.run.fence < fence:
            self._stop_run(task_id, StopReason.CANCELLED)

    def _on_reconnect(self) -> None:
        """Notifications sent while disconnected are lost: look for work and re-check every
        lease (a cancellation changes the fence) now rather than at the next heartbeat."""
        self._claims.wake()
        if self.timers is not None:
            self.timers.wake()
        self._leases.check_now()

    # -- running tasks ----------------------------------------------------------------------

    def _start_runs(self, tasks: list[ClaimedTask]) -> None:
        """Make runs of claimed tasks (the claim loop calls this once per claim statement)."""
        loop = asyncio.get_running_loop()
        writer, active_runs, runners = self._writer, self._active, self._runners
        now = loop.time()
        for claimed in tasks:
            run = TaskRun(claimed, writer, loop)
            active = _Active(run, runners[claimed.agent_orch], now)
            active_runs[run.id] = active
            active.task = loop.create_task(self._execute(active), name=f"task:{run.id_str}")
        if len(self._orchs) == 1:
            TASKS.claimed(self._orchs[0], len(tasks))
        else:
            for claimed in tasks:
                TASKS.claimed(claimed.agent_orch)
        self.stats["claimed"] += len(tasks)
        self.stats["claim_statements"] += 1

    def _held_leases(self) -> list[Lease]:
        # Runs stopping for a shutdown keep their lease until their hand-back is queued.
        return [
            (a.run.id, a.run.fence)
            for a in self._active.values()
            if a.run.stop_reason in (None, StopReason.SHUTDOWN)
        ]

    async def _execute(self, active: _Active) -> None:
        run = active.run
        result: RunResult | None = None
        error: Exception | None = None
        try:
            if not run.stopped():  # else stopped before it started
                if tracing.enabled():
                    result, error = await traced_run(
                        run,
                        lambda: self._run_executor(active),
                        self._queries.instance_trace_context,
                    )
                else:
                    if logs.task_ids_logged():
                        claimed = run.claimed
                        trace_id = tracing.trace_id_of(claimed.record["traceparent"])
                        logs.bind_task(run.id_str, claimed.proc_inst_id, trace_id)
                    result, error = await self._run_executor(active)
            self._end(
                active,
                end_of_attempt(
                    run.id,
                    run.attempt,
                    run.claimed.max_attempts,
                    result=result,
                    error=error,
                    stopped=run.stop_reason,
                    retry=self.options.retry,
                ),
            )
        finally:
            self._release(active)

    async def _run_executor(self, active: _Active) -> tuple[RunResult | None, Exception | None]:
        """Prepare the run's memory, then run the executor: its result, or the error that
        ended it (None, None: stopped)."""
        try:
            if self.options.memory is not None:
                await self.options.memory.prepare(active.run)
            return await active.runner.run(active.run), None
        except asyncio.CancelledError:
            if not active.run.stopped():
                raise
            _uncancel()  # we cancelled it to stop its executor; it goes on to end
            return None, None
        except Exception as exc:  # noqa: BLE001 - any executor error ends the attempt
            return None, exc

    def _release(self, active: _Active) -> None:
        """Free the run's slot (at most once: a later claim of the same task keeps its own)."""
        if self._active.get(active.run.id) is active:
            del self._active[active.run.id]
            self._claims.poke()

    def _end(self, active: _Active, end: AttemptEnd) -> None:
        """Queue the attempt's last write (its final events, result and state, committed
        together), if it has one. Its slot is free at once; ``end.stat`` is counted and
        ``end.note`` logged once the write is durable (see :meth:`_ended`)."""
        run = active.run
        self._release(active)
        if end.status is None:
            self._count(active, end.stat, end)
            return
        self._writer.finish(
            run.id,
            run.fence,
            end.status,
            final_events=[run.event_row(record, data) for record, data in end.events],
            output_json=end.output_json,
            error_json=None if end.error is None else encode_json(end.error),
            retry_delay=end.retry_delay,
            attempts=end.attempts,
            step=run.claimed.step,
            on_done=functools.partial(self._ended, active, end),
        )

    def _ended(self, active: _Active, end: AttemptEnd, outcome: WriteOutcome) -> None:
        """The attempt's last write committed, or was refused."""
        if active.run.claimed.agent_orch in self.options.agent_max_running:
            # room under the orchestrator's limit, now that the end is written: tasks an
            # earlier claim had to leave may go
            self._claims.wake()
        if outcome is WriteOutcome.FENCED_OUT:
            run = active.run
            self._count(active, "lease_lost")
            log.info("lease lost task=%s attempt=%d", run.id, run.attempt)
        elif outcome is WriteOutcome.REFUSED:  # the writer failed the task and logged why
            self._count(active, "failed")
        else:
            self._count(active, end.stat, end)

    def _count(self, active: _Active, stat: str, end: AttemptEnd | None = None) -> None:
        """Count the attempt's end (``stat``) in the worker's stats and metrics; log
        ``end``'s note."""
        self.stats[stat] += 1
        claimed = active.run.claimed
        TASKS.attempt_ended(
            claimed.agent_orch,
            stat,
            wait_seconds=claimed.wait_seconds,
            run_seconds=active.run.loop.time() - active.claimed_at,
            dead_lettered=end is not None and end.dead_letter,
            # a cancellation the worker did not write (a person's) was counted by its writer
            counted=end is None or end.status is not None,
        )
        if end is not None and end.note is not None:
            level, message, args = end.note
            log.log(level, message, *args)

    def _stop_run(self, task_id: uuid.UUID, reason: StopReason, fence: int | None = None) -> None:
        """Stop a running task early (only the attempt holding ``fence``, when given): its
        executor's ``cancel()`` is called (briefly bounded), then the run is cancelled. From
        here on the run's writes are refused."""
        active = self._active.get(task_id)
        if active is None or active.run.stop_reason is not None:
            return
        if fence is not None and active.run.fence != fence:  # about an earlier attempt
            return
        active.run.stop_reason = reason
        self._spawn(self._cancel(active))

    async def _cancel(self, active: _Active) -> None:
        try:
            await asyncio.wait_for(active.runner.cancel(active.run), _CANCEL_HOOK_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the run stops either way
            log.warning(
                "executor cancel() failed task=%s error=%s", active.run.id, type(exc).__name__
            )
        finally:
            if active.task is not None:
                active.task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    # -- shutdown ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _runs(self) -> AsyncIterator[None]:
        """The runs (and their cancel hooks) belong to this block. Left normally, it lets them
        finish within the grace period, hands the rest back and closes the runners; left by
        an exception, it cancels them and waits for them to end."""
        try:
            yield
        except BaseException:
            tasks: list[asyncio.Task[Any]] = [
                *(a.task for a in self._active.values() if a.task is not None),
                *self._helpers,
            ]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            raise
        await self._shutdown()

    async def _shutdown(self) -> None:
        tasks = [a.task for a in self._active.values() if a.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.options.shutdown_grace)
        for task_id in list(self._active):
            self._stop_run(task_id, StopReason.SHUTDOWN)
        remaining = [a.task for a in self._active.values() if a.task is not None]
        if remaining:
            # Hand-backs are single writes; an executor that ignores cancellation (a thread)
            # is waited for at most cancel_timeout, after which its lease simply expires.
            await asyncio.wait(remaining, timeout=self.options.cancel_timeout + 5)
        if self._helpers:
            await asyncio.wait(list(self._helpers), timeout=self.options.cancel_timeout)
        for name, runner in self._runners.items():
            try:
                await asyncio.wait_for(runner.aclose(), self.options.cancel_timeout)
            except Exception as exc:  # noqa: BLE001 - stopping anyway; say what did not close
                log.warning(
                    "runner did not close cleanly agent=%s error=%s", name, type(exc).__name__
                )


_POOL_SIZE = CLAIMS_IN_FLIGHT + 8
"""Connections of the worker's pool: the claims, the writer, heartbeats, lease recovery,
process timers, the schedule loop (its round's transaction, and a process start beside
it), and the webhook loop (a claim, and the records of sends that end together)."""


_DEREGISTER_SECONDS = 5.0
"""How long a stopping worker tries to delete its ``workers`` row."""

_CANCEL_HOOK_SECONDS = 0.5
"""How long an executor's ``cancel()`` may take before its run is cancelled anyway (the
cancellation target is under a second)."""


def _uncancel() -> None:
    """We cancelled the task ourselves to stop its executor; it goes on to record why."""
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()

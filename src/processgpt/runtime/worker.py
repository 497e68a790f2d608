"""The worker: claims tasks, runs them concurrently, keeps their leases, and ends each attempt.

One :class:`Worker` per process serves one or more orchestrators (``agent_orch`` names) with
up to ``concurrency`` tasks at once. It wakes on NOTIFY when work arrives (polling only as a
fallback), claims many tasks per statement (two claims overlap while a backlog lasts, see
:func:`claim_size`), renews all its leases in one statement per heartbeat, and writes through
one :class:`BatchWriter`. Its statements run on a small pool of its own, opened from the given
database's DSN, with plans made once per connection
(:data:`~processgpt.db.worker_queries.SERVER_SETTINGS`).

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
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from processgpt.db.database import Database, is_data_error, is_transient
from processgpt.db.listen import Listener
from processgpt.db.worker_queries import SERVER_SETTINGS, WorkerQueries
from processgpt.domain.errors import (
    ExecutorReturnedWithoutResult,
    InvalidInput,
    RetryLater,
)
from processgpt.domain.events import EventRecord, EventType, encode_json
from processgpt.domain.task import RetryPolicy, TaskStatus
from processgpt.runtime.run import Outcome, RunResult, StopReason, TaskRun, TaskRunner
from processgpt.runtime.writer import BatchWriter, WriteOutcome

log = logging.getLogger(__name__)

_NOT_RETRIED = (InvalidInput, ExecutorReturnedWithoutResult)
"""Errors a new attempt cannot fix: the task fails at once."""
_MAX_ERROR_CHARS = 2000


def claim_size(*, concurrency: int, held: int, in_flight: int, may_have_work: bool) -> int:
    """How many tasks a worker claims now (0: none), holding ``held`` slots (running tasks and
    claims under way) with ``in_flight`` claims under way.

    A claim follows a wake-up (a notification, the poll) or a claim that came back full
    (``may_have_work``). It asks for at most a ``_CLAIMS_IN_FLIGHT``-th of the concurrency,
    and while one is under way the next waits until that many slots are free, so that during
    a backlog claims stay large and the tasks of one run while the next one's round trip is
    under way. With nothing under way it claims whatever is free.
    """
    free = concurrency - held
    if free <= 0 or in_flight >= _CLAIMS_IN_FLIGHT or not may_have_work:
        return 0
    chunk = -(-concurrency // _CLAIMS_IN_FLIGHT)
    if in_flight and free < chunk:
        return 0
    return min(free, chunk)


def default_consumer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 10
    lease_seconds: float = 30.0
    poll_interval: float = 1.0
    shutdown_grace: float = 30.0
    flush_interval: float = 0.002
    cancel_timeout: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    consumer: str = field(default_factory=default_consumer)


@dataclass(slots=True)
class _Active:
    run: TaskRun
    runner: TaskRunner
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
    ) -> None:
        if not runners:
            raise ValueError("a worker needs at least one orchestrator to run")
        self.db = db
        self.options = options or WorkerOptions()
        self._runners = dict(runners)
        self._descriptions = dict(descriptions or {})
        self._orchs = sorted(self._runners)
        self._queries = WorkerQueries(db)  # on the worker's own pool once run() opens it
        self._writer = BatchWriter(
            self._queries,
            on_refused=lambda tid, fence: self._stop_run(tid, StopReason.LEASE_LOST, fence),
            flush_interval=self.options.flush_interval,
        )
        self._active: dict[uuid.UUID, _Active] = {}  # runs whose last write is not queued yet
        self._helpers: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()  # there may be new work (a notification, the poll)
        self._poke = asyncio.Event()  # something the claim loop decides on changed
        self._reserved = 0  # slots held by claims in flight
        self._backlog = False  # the last claim came back full
        self._poll_at = 0.0  # the claim loop looks for work by then even if not woken
        self._check_leases = asyncio.Event()
        self._stopping = asyncio.Event()
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

    def stop(self) -> None:
        """Begin a graceful stop (safe to call more than once)."""
        if not self._stopping.is_set():
            log.info(
                "worker stopping running=%d grace=%.1fs",
                len(self._active),
                self.options.shutdown_grace,
            )
        self._stopping.set()
        self._poke.set()

    @property
    def writer_batches(self) -> int:
        """Write statements (batches) the worker's writer has committed."""
        return self._writer.batches

    @property
    def running(self) -> int:
        """Runs holding a slot (an attempt whose last write is queued holds none)."""
        return len(self._active)

    async def run(self) -> None:
        """Serve until :meth:`stop`, then shut down gracefully and return."""
        # The worker's statements run on connections of their own: load on the caller's pool
        # (the API's, in `processgpt up`) can never hold up the writer or the heartbeats.
        # Connections are opened when first needed, so a server still starting is retried
        # like any other transient error.
        pool = await Database.connect(
            self.db.dsn, min_size=0, max_size=_POOL_SIZE, server_settings=SERVER_SETTINGS
        )
        self._queries.db = pool
        try:
            await self._serve()
        finally:
            await pool.close()

    async def _serve(self) -> None:
        listener = Listener(self.db.dsn)
        listener.subscribe("processgpt_tasks", self._on_task_notification)
        listener.subscribe("processgpt_control", self._on_control_notification)
        listener.on_reconnect(self._on_reconnect)
        await self._retry_transient(
            lambda: self._queries.register_orchestrators(
                {name: self._descriptions.get(name, "") for name in self._orchs}
            )
        )
        writer = asyncio.create_task(self._writer.run(), name="writer")
        background = [
            asyncio.create_task(listener.run(), name="listener"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._recovery_loop(), name="recovery"),
        ]
        claim_loop: asyncio.Task[None] | None = None
        log.info(
            "worker started consumer=%s agents=%s concurrency=%d",
            self.options.consumer,
            ",".join(self._orchs),
            self.options.concurrency,
        )
        try:
            await asyncio.wait_for(listener.connected.wait(), timeout=30)
            self.started.set()
            claim_loop = asyncio.create_task(self._claim_loop(), name="claim")
            await claim_loop  # returns once stop() was called
            await self._shutdown()
            self._writer.close()
            await writer
        finally:
            if claim_loop is not None:
                claim_loop.cancel()
            writer.cancel()
            for task in background:
                task.cancel()
            for task in list(self._helpers):
                task.cancel()
            for active in list(self._active.values()):
                if active.task is not None:
                    active.task.cancel()
            await asyncio.gather(
                *background,
                writer,
                *([claim_loop] if claim_loop is not None else []),
                *self._helpers,
                *(a.task for a in self._active.values() if a.task is not None),
                return_exceptions=True,
            )
            log.info("worker stopped consumer=%s stats=%s", self.options.consumer, self.stats)

    # -- notifications ----------------------------------------------------------------------

    def _on_task_notification(self, payload: str) -> None:
        if payload in self._runners:
            self._wake.set()
            self._poke.set()

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
        self._wake.set()
        self._poke.set()
        self._check_leases.set()

    # -- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        """Send claims as :func:`claim_size` says. A claim's slots are reserved from the moment
        it is sent, so the worker never holds more than ``concurrency`` tasks."""
        loop = asyncio.get_running_loop()
        claims: set[asyncio.Task[None]] = set()
        self._wake.set()  # look for work at once
        try:
            while not self._stopping.is_set():
                self._poke.clear()
                for claim in [c for c in claims if c.done()]:
                    claims.discard(claim)
                    claim.result()  # a bug in handling claimed rows stops the worker loudly
                size = self._next_claim_size(len(claims))
                if size:
                    self._wake.clear()
                    self._reserved += size
                    if self._poll_at <= loop.time():  # a sooner deadline (a delayed task) stays
                        self._poll_at = loop.time() + self.options.poll_interval
                    claims.add(asyncio.create_task(self._claim(size), name="claim"))
                    continue
                try:
                    async with asyncio.timeout_at(self._poll_at):
                        await self._poke.wait()
                except TimeoutError:  # the polling fallback for missed notifications
                    self._wake.set()
                    self._poll_at = loop.time() + self.options.poll_interval
        except asyncio.CancelledError:
            for claim in claims:
                claim.cancel()
            raise
        finally:
            if claims:  # their rows become runs, which the shutdown finishes or hands back
                await asyncio.wait(claims)
                for claim in claims:
                    if not claim.cancelled():
                        claim.result()

    def _next_claim_size(self, in_flight: int) -> int:
        return claim_size(
            concurrency=self.options.concurrency,
            held=len(self._active) + self._reserved,
            in_flight=in_flight,
            may_have_work=self._wake.is_set() or self._backlog,
        )

    async def _claim(self, limit: int) -> None:
        try:
            rows = await self._claim_rows(limit)
        finally:
            self._reserved -= limit
            self._poke.set()
        if rows is None:  # the claim failed (logged); the next wake-up or poll tries again
            self._backlog = False
            return
        loop = asyncio.get_running_loop()
        for claimed in rows:
            run = TaskRun(claimed, self._writer, loop)
            active = _Active(run, self._runners[claimed["agent_orch"]])
            self._active[run.id] = active
            active.task = loop.create_task(self._execute(active), name=f"task:{run.id_str}")
        self.stats["claimed"] += len(rows)
        self.stats["claim_statements"] += 1
        self._backlog = len(rows) == limit
        if not rows:  # poll again when the next delayed task is due, if that is sooner
            seconds = await self._until_next_run_at(self.options.poll_interval)
            self._poll_at = min(self._poll_at, loop.time() + seconds)
            self._poke.set()

    async def _claim_rows(self, limit: int) -> list[asyncpg.Record] | None:
        try:
            return await self._queries.claim(
                self._orchs, limit, self.options.consumer, self.options.lease_seconds
            )
        except Exception as exc:  # noqa: BLE001 - retried at the next wake-up or poll
            _log_db_error("claim", exc)
            await asyncio.sleep(min(1.0, self.options.poll_interval))
            return None

    async def _until_next_run_at(self, default: float) -> float:
        try:
            seconds = await self._queries.seconds_until_next_run(self._orchs)
        except Exception as exc:  # noqa: BLE001 - the poll interval is the fallback
            _log_db_error("next run time", exc)
            return default
        return default if seconds is None else max(0.0, min(default, seconds))

    # -- running one task -----------------------------------------------------------------

    async def _execute(self, active: _Active) -> None:
        run = active.run
        try:
            if run.stopped():  # stopped before it started
                self._after_stop(active)
                return
            try:
                result = await active.runner.run(run)
            except asyncio.CancelledError:
                if not run.stopped():
                    raise
                _uncancel()
                self._after_stop(active)
                return
            except Exception as exc:  # noqa: BLE001 - any executor error ends the attempt
                if run.stopped():
                    self._after_stop(active)
                else:
                    self._fail_attempt(active, exc)
                return
            if run.stopped():
                self._after_stop(active)
            else:
                self._complete(active, result)
        finally:
            self._release(active)

    def _release(self, active: _Active) -> None:
        """Free the run's slot (at most once: a later claim of the same task keeps its own)."""
        if self._active.get(active.run.id) is active:
            del self._active[active.run.id]
            self._poke.set()

    def _finish(
        self,
        active: _Active,
        status: TaskStatus,
        *events: tuple[EventRecord, str],
        output: Any = None,
        error: dict[str, Any] | None = None,
        retry_delay: float | None = None,
        attempts: int | None = None,
        stat: str,
        note: _Note | None = None,
    ) -> None:
        """Queue the attempt's last write (its final events, result and state, committed
        together). Its slot is free at once; once the write is durable, ``stat`` is counted
        and ``note`` logged (see :meth:`_ended`)."""
        run = active.run
        try:
            output_json = None if output is None else encode_json(output)
        except InvalidInput as exc:  # e.g. NaN in the result: fail instead of retrying forever
            error = {"code": exc.code, "message": f"the result cannot be stored: {exc.message}"}
            status, events, output_json = (
                TaskStatus.FAILED,
                (_event(EventType.ERROR, {**error, "retrying": False}, "TASK_ERROR"),),
                None,
            )
            stat, note = "failed", (logging.WARNING, "task result refused task=%s", (run.id,))
        self._release(active)
        self._writer.finish(
            run.id,
            run.fence,
            status,
            final_events=[run.event_row(record, data) for record, data in events],
            output_json=output_json,
            error_json=None if error is None else encode_json(error),
            retry_delay=retry_delay,
            attempts=attempts,
            on_done=functools.partial(self._ended, run, stat, note),
        )

    def _ended(self, run: TaskRun, stat: str, note: _Note | None, outcome: WriteOutcome) -> None:
        """The attempt's last write committed, or was refused."""
        if outcome is WriteOutcome.FENCED_OUT:
            self.stats["lease_lost"] += 1
            log.info("lease lost task=%s attempt=%d", run.id, run.attempt)
            return
        if outcome is WriteOutcome.REFUSED:  # the writer failed the task and logged why
            self.stats["failed"] += 1
            return
        self.stats[stat] += 1
        if note is not None:
            level, message, args = note
            log.log(level, message, *args)

    def _complete(self, active: _Active, result: RunResult) -> None:
        run = active.run
        if result.outcome is Outcome.COMPLETED:
            self._finish(
                active,
                TaskStatus.DONE,
                _CREW_COMPLETED,
                output=result.output,
                stat="done",
                note=(logging.INFO, "task done task=%s attempt=%d", (run.id, run.attempt)),
            )
        elif result.outcome is Outcome.INPUT_REQUIRED:
            self._finish(
                active,
                TaskStatus.INPUT_REQUIRED,
                stat="input_required",
                note=(logging.INFO, "task waits for input task=%s", (run.id,)),
            )
        elif result.outcome is Outcome.CANCELLED:
            self._finish(
                active,
                TaskStatus.CANCELLED,
                _event(
                    EventType.TASK_CANCELLED,
                    {"reason": result.message or "agent cancelled"},
                    "TASK_CANCELLED",
                ),
                stat="cancelled",
            )
        else:
            message = result.message or "the agent reported failure"
            error = {"code": "agent_failed", "message": message, "attempt": run.attempt}
            self._finish(
                active,
                TaskStatus.FAILED,
                _event(EventType.ERROR, {**error, "retrying": False}, "TASK_ERROR"),
                error=error,
                stat="failed",
                note=(logging.INFO, "task failed by agent task=%s", (run.id,)),
            )

    def _fail_attempt(self, active: _Active, exc: Exception) -> None:
        run = active.run
        code = getattr(exc, "code", "executor_error")
        message = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
        retrying = run.attempt < int(run.claimed["max_attempts"]) and not isinstance(
            exc, _NOT_RETRIED
        )
        error: dict[str, Any] = {"code": code, "message": message, "attempt": run.attempt}
        if retrying:
            delay = (
                exc.delay
                if isinstance(exc, RetryLater) and exc.delay is not None
                else self.options.retry.delay(run.attempt)
            )
            self._finish(
                active,
                TaskStatus.PENDING,
                _event(
                    EventType.ERROR,
                    {**error, "retrying": True, "retry_in_seconds": round(delay, 3)},
                    "TASK_ERROR",
                ),
                error=error,
                retry_delay=delay,
                stat="retried",
                note=(
                    logging.WARNING,
                    "task attempt failed, retrying task=%s attempt=%d delay=%.2fs error=%s",
                    (run.id, run.attempt, delay, type(exc).__name__),
                ),
            )
        else:
            self._finish(
                active,
                TaskStatus.FAILED,
                _event(EventType.ERROR, {**error, "retrying": False}, "TASK_ERROR"),
                error=error,
                stat="failed",
                note=(
                    logging.WARNING,
                    "task failed task=%s attempt=%d error=%s",
                    (run.id, run.attempt, type(exc).__name__),
                ),
            )

    def _after_stop(self, active: _Active) -> None:
        run = active.run
        if run.stop_reason is StopReason.SHUTDOWN:
            self._finish(
                active,
                TaskStatus.PENDING,
                _event(
                    EventType.TASK_REQUEUED,
                    {"reason": "shutdown", "attempt": run.attempt},
                    "TASK_REQUEUED",
                ),
                retry_delay=0.0,
                attempts=run.attempt - 1,
                stat="handed_back",
                note=(logging.INFO, "task handed back task=%s", (run.id,)),
            )
        elif run.stop_reason is StopReason.CANCELLED:
            self.stats["cancelled"] += 1
            log.info("task cancelled task=%s", run.id)
        else:
            self.stats["lease_lost"] += 1
            log.warning("task stopped: lease lost task=%s attempt=%d", run.id, run.attempt)

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

    # -- leases -----------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = self.options.lease_seconds / 3
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._check_leases.wait()
            self._check_leases.clear()
            # Runs stopping for a shutdown keep their lease until their hand-back is queued.
            held = [
                a for a in self._active.values() if a.run.stop_reason in (None, StopReason.SHUTDOWN)
            ]
            if not held:
                continue
            try:
                kept = await self._queries.extend_leases(
                    [(a.run.id, a.run.fence) for a in held], self.options.lease_seconds
                )
            except Exception as exc:  # noqa: BLE001 - retried at the next beat
                _log_db_error("lease renewal", exc)
                continue
            for active in held:
                if active.run.id not in kept:
                    self._stop_run(active.run.id, StopReason.LEASE_LOST)

    async def _recovery_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval)
            try:
                recovered = await self._queries.recover_expired()
            except Exception as exc:  # noqa: BLE001 - retried at the next interval
                _log_db_error("lease recovery", exc)
                continue
            for row in recovered:
                log.warning(
                    "recovered task with expired lease task=%s now=%s", row["id"], row["status"]
                )

    # -- shutdown ---------------------------------------------------------------------------

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

    # -- helpers ----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    async def _retry_transient(self, make: Any) -> Any:
        delay = 0.05
        while True:
            try:
                return await make()
            except Exception as exc:
                if is_data_error(exc):
                    raise
                _log_db_error("start-up", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


_Note = tuple[int, str, tuple[Any, ...]]
"""A log line written once an attempt's last write is durable: level, message, arguments."""

_CREW_COMPLETED = EventRecord.build(
    EventType.CREW_COMPLETED, {"status": "completed"}, job_id="CREW_FINISHED", crew_type="crew"
)


_CLAIMS_IN_FLIGHT = 2
"""Claims one worker may have under way at once while a backlog lasts."""

_POOL_SIZE = _CLAIMS_IN_FLIGHT + 3
"""Connections of the worker's pool: the claims, the writer, heartbeats, lease recovery."""

_CANCEL_HOOK_SECONDS = 0.5
"""How long an executor's ``cancel()`` may take before its run is cancelled anyway (the
cancellation target is under a second)."""


def _log_db_error(what: str, exc: BaseException) -> None:
    """Background loops never die on a database error: they log it and try again."""
    if is_transient(exc):
        log.warning("%s failed, will retry error=%s", what, type(exc).__name__)
    else:
        log.error("%s failed, will retry error=%s", what, type(exc).__name__, exc_info=exc)


def _uncancel() -> None:
    """We cancelled the task ourselves to stop its executor; it goes on to record why."""
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()


def _event(
    event_type: EventType, data: Any, job_id: str, crew_type: str = "agent"
) -> tuple[EventRecord, str]:
    """An event the worker writes itself, with its encoded data."""
    return EventRecord.build(event_type, data, job_id=job_id, crew_type=crew_type)

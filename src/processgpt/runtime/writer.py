"""The durable event sink: one writer per worker process.

Every write a worker makes for its running tasks (events, drafts, final results and states)
goes through :class:`BatchWriter`, which groups whatever arrived within ``flush_interval`` into
one fenced statement: one transaction and one NOTIFY per batch, however many tasks and events
it holds. One batch is in flight at a time, so a task's writes are durable in the order they
were made, and a task's final write commits together with its last events.

A batch that fails on a lost connection is retried (with backoff) until it commits; it is
never dropped. A batch refused by the database for another reason is split per task, so one
bad write fails one task, not its neighbours.

Writes are kept per attempt, ``(todo id, fence)``: a later claim of the same task by the same
worker never shares a write, a callback or a refusal with the attempt before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from processgpt.db.database import is_data_error
from processgpt.db.retry import retry_transient
from processgpt.db.worker_queries import EventRow, StepRef, TaskWrite, WorkerQueries
from processgpt.domain.errors import EventBufferFull
from processgpt.domain.events import encode_json
from processgpt.domain.task import TaskStatus
from processgpt.metrics import (
    EVENT_WRITE_BATCH_EVENTS,
    EVENT_WRITE_BATCH_TASKS,
    EVENT_WRITE_DURATION,
)
from processgpt.runtime.attempt import failure_event

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 8000
"""A coalesced text delta grows to at most this many characters, then a new one starts."""


class WriteOutcome(enum.Enum):
    """What became of an attempt's last write."""

    WRITTEN = "written"  # durable
    FENCED_OUT = "fenced_out"  # the fence no longer held (the lease was lost): nothing written
    REFUSED = "refused"  # the database refused the values; the task was failed instead


@dataclass(slots=True)
class _Pending:
    write: TaskWrite
    on_done: Callable[[WriteOutcome], None] | None = None  # the attempt's end, told once
    hold_until: float = 0.0  # a growing text delta waits until then for more text


_Attempt = tuple[uuid.UUID, int]
"""A task's attempt: its id and fence."""


class BatchWriter:
    """Groups the writes of all running tasks of a process into few transactions.

    Bounded: at most ``max_pending_events`` events wait; :meth:`wait_for_room` blocks
    producers above ``high_water`` events, and an event offered above the hard limit is
    refused with :class:`EventBufferFull`. ``on_refused(todo_id, fence)`` is called when an
    attempt's write was not accepted (its fence no longer held, or its values were refused):
    that attempt must stop.
    """

    def __init__(
        self,
        queries: WorkerQueries,
        *,
        on_refused: Callable[[uuid.UUID, int], None],
        flush_interval: float = 0.002,
        text_window: float = 0.03,
        max_batch_events: int = 2000,
        high_water: int = 5000,
        max_pending_events: int = 20000,
    ) -> None:
        self._queries = queries
        self._on_refused = on_refused
        self._flush_interval = flush_interval
        self._text_window = text_window
        self._max_batch_events = max_batch_events
        self._high_water = high_water
        self._max_pending = max_pending_events
        self._pending: dict[_Attempt, _Pending] = {}
        self._pending_events = 0
        self._closing = False
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.batches = 0
        self.rows = 0

    # -- producers (event loop thread only) ---------------------------------------------

    def _entry(self, todo_id: uuid.UUID, fence: int) -> _Pending:
        entry = self._pending.get((todo_id, fence))
        if entry is None:
            entry = self._pending[todo_id, fence] = _Pending(TaskWrite(todo_id, fence))
            self._wakeup.set()
        return entry

    def append_event(self, todo_id: uuid.UUID, fence: int, event: EventRow) -> None:
        """Queue an event (its seq already assigned by the task's run)."""
        if self._pending_events >= self._max_pending:
            raise EventBufferFull(
                f"{self._pending_events} events are waiting to be written; await enqueue_event "
                "to let the writer keep up"
            )
        self._entry(todo_id, fence).write.events.append(event)
        self._pending_events += 1
        if self._pending_events >= self._high_water:
            self._room.clear()

    def append_text(
        self,
        todo_id: uuid.UUID,
        fence: int,
        *,
        event_type: str,
        job_id: str,
        text: str,
        next_seq: Callable[[], int],
    ) -> None:
        """Queue a text delta, merged into the task's previous delta while that one is not
        written yet: a token stream becomes one row per ``text_window``, not one per token."""
        entry = self._pending.get((todo_id, fence))
        last = entry.write.events[-1] if entry is not None and entry.write.events else None
        if (
            last is not None
            and last.text is not None
            and last.event_type == event_type
            and last.job_id == job_id
            and last.text_chars + len(text) <= MAX_TEXT_CHARS
        ):
            last.text.append(text)
            last.text_chars += len(text)
            return
        row = EventRow(next_seq(), job_id, event_type, None, None, "", [text], len(text))
        self.append_event(todo_id, fence, row)
        entry = self._pending[todo_id, fence]
        if not entry.hold_until:  # held once: a busy mix of events cannot postpone it again
            entry.hold_until = time.monotonic() + self._text_window

    def set_draft(self, todo_id: uuid.UUID, fence: int, draft_json: str) -> None:
        """Queue an update of the task's draft (a partial result)."""
        self._entry(todo_id, fence).write.draft_json = draft_json

    @property
    def has_room(self) -> bool:
        """Whether producers may go on without waiting (fewer than ``high_water`` events
        wait)."""
        return self._room.is_set()

    async def wait_for_room(self) -> None:
        """Return once fewer than ``high_water`` events wait (producer backpressure)."""
        await self._room.wait()

    def finish(
        self,
        todo_id: uuid.UUID,
        fence: int,
        status: TaskStatus,
        *,
        final_events: list[EventRow],
        output_json: str | None = None,
        error_json: str | None = None,
        retry_delay: float | None = None,
        attempts: int | None = None,
        step: StepRef | None = None,
        on_done: Callable[[WriteOutcome], None],
    ) -> None:
        """Queue the attempt's end: its last events, result and state, written together.
        ``on_done`` is called once with what became of that write (:class:`WriteOutcome`).
        ``step``: the task is a process task; a final end (DONE, FAILED) commits together
        with the process step it causes."""
        entry = self._entry(todo_id, fence)
        write = entry.write
        write.events.extend(final_events)
        self._pending_events += len(final_events)
        write.status = status
        write.output_json = output_json
        write.error_json = error_json
        write.retry_delay = retry_delay
        write.attempts = attempts
        write.step = step
        entry.on_done = on_done
        self._wakeup.set()

    @property
    def idle(self) -> bool:
        return not self._pending

    # -- the flush loop -----------------------------------------------------------------

    def close(self) -> None:
        """Ask :meth:`run` to return once everything queued is written (producers must be
        done). Cancelling ``run`` instead could abandon a batch in flight."""
        self._closing = True
        self._wakeup.set()

    async def run(self) -> None:
        """Write batches, one in flight at a time, until :meth:`close` and nothing is left."""
        while not (self._closing and not self._pending):
            await self._wakeup.wait()
            if self._pending_events < self._max_batch_events and self._flush_interval > 0:
                await asyncio.sleep(self._flush_interval)
            batch = self._take_batch(None if self._closing else time.monotonic())
            if not self._pending:
                self._wakeup.clear()
            if batch:
                await self._write(batch)
            elif self._pending:  # only growing text deltas: wait for one to be due, or news
                due = min(e.hold_until for e in self._pending.values())
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, due - time.monotonic())):
                        await self._wakeup.wait()
                self._wakeup.set()

    def _take_batch(self, now: float | None) -> list[_Pending]:
        """Entries to write now, oldest first, at most one attempt per task (the statement
        tells tasks apart by id); with ``now``, entries holding a growing text delta stay
        until due unless something waits for them."""
        batch: list[_Pending] = []
        events = 0
        tasks: set[uuid.UUID] = set()
        for attempt in list(self._pending):
            if events >= self._max_batch_events:
                break
            entry = self._pending[attempt]
            if now is not None and entry.hold_until > now and entry.on_done is None:
                continue
            if attempt[0] in tasks:  # a later attempt of a task goes in the next batch
                continue
            tasks.add(attempt[0])
            del self._pending[attempt]
            for row in entry.write.events:
                if row.text is not None:  # the delta stops growing once taken
                    row.data_json = encode_json({"text": "".join(row.text)})
                    row.text = None
            batch.append(entry)
            events += len(entry.write.events)
        return batch

    async def _write(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        accepted, refused = await self._apply_with_retry([e.write for e in batch])
        EVENT_WRITE_DURATION.observe(time.perf_counter() - started)
        count = sum(len(e.write.events) for e in batch)
        EVENT_WRITE_BATCH_EVENTS.observe(count)
        EVENT_WRITE_BATCH_TASKS.observe(len(batch))
        self._pending_events -= count
        if self._pending_events < self._high_water:
            self._room.set()
        self.batches += 1
        self.rows += count
        for entry in batch:
            todo_id, fence = entry.write.todo_id, entry.write.fence
            if todo_id in accepted:
                outcome = WriteOutcome.WRITTEN
            else:  # the attempt may write nothing more
                outcome = WriteOutcome.REFUSED if todo_id in refused else WriteOutcome.FENCED_OUT
                self._on_refused(todo_id, fence)
            if entry.on_done is not None:
                try:
                    entry.on_done(outcome)
                except Exception:  # a bug in the callback must not stop the writer
                    log.exception("attempt end callback failed todo_id=%s", todo_id)

    async def _apply_with_retry(
        self, writes: list[TaskWrite]
    ) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """Write until committed; the tasks whose writes were accepted, and those whose values
        the database refused (failed instead, see :meth:`_fail_refused_write`)."""
        try:
            accepted = await retry_transient(
                lambda: self._queries.apply_batch(writes),
                what=f"event batch of {len(writes)} tasks",
            )
        except Exception as exc:
            if not is_data_error(exc):  # retry_transient gives back nothing else
                raise
            if len(writes) > 1:
                return await self._apply_one_by_one(writes)
            await self._fail_refused_write(writes[0], exc)
            return set(), {writes[0].todo_id}
        return accepted, set()

    async def _apply_one_by_one(
        self, writes: list[TaskWrite]
    ) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        accepted: set[uuid.UUID] = set()
        refused: set[uuid.UUID] = set()
        for write in writes:
            ok, bad = await self._apply_with_retry([write])
            accepted |= ok
            refused |= bad
        return accepted, refused

    async def _fail_refused_write(self, write: TaskWrite, exc: Exception) -> None:
        """The database refused this task's values (a bug: inputs are validated before they
        get here). Fail the attempt with an error event numbered after whatever the log
        already holds; the run is told it may write nothing more."""
        log.error(
            "task write refused by the database todo_id=%s error=%s",
            write.todo_id,
            type(exc).__name__,
        )
        error = {
            "code": "storage_error",
            "message": f"the task's events could not be stored ({type(exc).__name__})",
        }
        record, data_json = failure_event(error)
        try:
            await retry_transient(
                lambda: self._queries.fail_task_write(
                    write.todo_id, write.fence, error, record, data_json
                ),
                what="recording a refused write",
            )
        except Exception as fail_exc:
            if not is_data_error(fail_exc):
                raise
            # Cannot happen for this fixed statement; the task's lease expires instead.
            log.error(
                "could not record the failure todo_id=%s error=%s",
                write.todo_id,
                type(fail_exc).__name__,
            )

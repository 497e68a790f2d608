"""A claimed task while a worker runs it: its identity, fence, context and event sequence."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Generator
from typing import Any, Protocol

from processgpt.db.worker_queries import ClaimedTask, EventRow
from processgpt.domain.errors import LeaseLost
from processgpt.domain.events import EventRecord, encode_json
from processgpt.memory.bound import TaskMemory
from processgpt.runtime.attempt import Outcome, RunResult, StopReason
from processgpt.runtime.context import build_extras
from processgpt.runtime.writer import BatchWriter

__all__ = ["READY", "Outcome", "RunResult", "StopReason", "TaskRun", "TaskRunner"]


class TaskRunner(Protocol):
    """What the worker runs for each task: the agent adapter implements it.

    ``run`` returns how the run ended; raising an exception means the attempt failed and the
    retry policy applies. ``cancel`` is called when the run must stop early, before the
    asyncio task running ``run`` is cancelled.
    """

    async def run(self, task: TaskRun) -> RunResult: ...

    async def cancel(self, task: TaskRun) -> None: ...

    async def aclose(self) -> None:
        """Release what the runner keeps across tasks (connections, subprocesses); called
        once when the worker stops."""


class _Accepted:
    """What :meth:`TaskRun.emit` returns while the writer is saturated: the event is already
    queued; awaiting this waits until the writer has room (backpressure). Not awaiting it is
    allowed."""

    __slots__ = ("_writer",)

    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer

    def __await__(self) -> Generator[Any, None, None]:
        yield from self._writer.wait_for_room().__await__()


class _Ready:
    """What :meth:`TaskRun.emit` returns when there is nothing to wait for."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


READY: Awaitable[None] = _Ready()


class TaskRun:
    """One attempt at a claimed task. Events emitted here get the next sequence numbers and
    go to the process's :class:`BatchWriter`, fenced by this attempt's token.

    ``claimed`` is the task as claimed. :attr:`row` and :attr:`context` (the executor-facing
    ``extras``) are built from the claim's record when first asked for.
    """

    __slots__ = (
        "_context",
        "_next_seq",
        "_row",
        "_thread",
        "attempt",
        "claimed",
        "fence",
        "id",
        "id_str",
        "loop",
        "memory",
        "stop_reason",
        "writer",
    )

    def __init__(
        self,
        claimed: ClaimedTask,
        writer: BatchWriter,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.claimed = claimed
        self.writer = writer
        self.loop = loop
        self.stop_reason: StopReason | None = None
        self.id = claimed.id
        self.id_str = str(self.id)
        self.fence = claimed.fence
        self.attempt = claimed.attempts
        self._row: dict[str, Any] | None = None
        self._context: dict[str, Any] | None = None
        self._next_seq = claimed.last_seq + 1
        self._thread = threading.get_ident()
        self.memory: TaskMemory | None = None
        """The task's memory (its tools reach only the task's tenant and scope), when the
        worker has memory."""

    @property
    def row(self) -> dict[str, Any]:
        """The task's row as claimed."""
        if self._row is None:
            self._row = self.claimed.row()
        return self._row

    @property
    def context(self) -> dict[str, Any]:
        """The ``extras`` of the task's context (see :func:`build_extras`)."""
        if self._context is None:
            self._context = build_extras(self.row, self.claimed.loaded_context())
        return self._context

    @property
    def form_id(self) -> str | None:
        """The id of the task's form, if it has one."""
        return self.claimed.form_id

    def stopped(self) -> bool:
        """Whether the run was told to stop (it may change while the run awaits)."""
        return self.stop_reason is not None

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest event queued so far."""
        return self._next_seq - 1

    def take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def emit(self, record: EventRecord, data_json: str | None = None) -> Awaitable[None]:
        """Queue an event. Safe from any thread: from a thread other than the worker's event
        loop it blocks until the event is queued. Raises :class:`LeaseLost` once the run was
        stopped (its writes would be rejected anyway)."""
        return self.emit_fields(
            record.event_type,
            record.job_id,
            record.crew_type,
            record.status.value if record.status else None,
            data_json if data_json is not None else encode_json(record.data),
        )

    def emit_fields(
        self,
        event_type: str,
        job_id: str,
        crew_type: str | None,
        status: str | None,
        data_json: str,
    ) -> Awaitable[None]:
        """:meth:`emit` for fields already validated (as :meth:`EventRecord.build` does) and
        data already encoded."""
        if threading.get_ident() != self._thread:
            future = asyncio.run_coroutine_threadsafe(
                self._emit_async(event_type, job_id, crew_type, status, data_json), self.loop
            )
            future.result()
            return READY
        if self.stop_reason is not None:
            raise LeaseLost(self.id)
        row = EventRow(self._next_seq, job_id, event_type, crew_type, status, data_json)
        self._next_seq += 1
        writer = self.writer
        writer.append_event(self.id, self.fence, row)
        return READY if writer.has_room else _Accepted(writer)

    async def _emit_async(
        self,
        event_type: str,
        job_id: str,
        crew_type: str | None,
        status: str | None,
        data_json: str,
    ) -> None:
        await self.emit_fields(event_type, job_id, crew_type, status, data_json)

    def emit_text(
        self, text: str, *, event_type: str = "text_delta", job_id: str | None = None
    ) -> Awaitable[None]:
        """Queue a piece of streamed text; consecutive pieces are coalesced into one event.
        Safe from any thread."""
        if threading.get_ident() != self._thread:
            future = asyncio.run_coroutine_threadsafe(
                self._emit_text_async(text, event_type, job_id), self.loop
            )
            future.result()
            return READY
        if self.stop_reason is not None:
            raise LeaseLost(self.id)
        writer = self.writer
        writer.append_text(
            self.id,
            self.fence,
            event_type=event_type,
            job_id=job_id or self.id_str,
            text=text,
            next_seq=self.take_seq,
        )
        return READY if writer.has_room else _Accepted(writer)

    async def _emit_text_async(self, text: str, event_type: str, job_id: str | None) -> None:
        await self.emit_text(text, event_type=event_type, job_id=job_id)

    def set_draft(self, draft: Any) -> None:
        """Queue an update of the task's partial result."""
        if threading.get_ident() != self._thread:
            self.loop.call_soon_threadsafe(self.set_draft, draft)
            return
        if self.stop_reason is None:
            self.writer.set_draft(self.id, self.fence, encode_json(draft))

    def event_row(self, record: EventRecord, data_json: str | None = None) -> EventRow:
        """A final event with the next sequence number, for the attempt's last write."""
        return EventRow(
            self.take_seq(),
            record.job_id,
            record.event_type,
            record.crew_type,
            record.status.value if record.status else None,
            data_json if data_json is not None else encode_json(record.data),
        )

"""``GET /v1/processes/{id}/stream``: a process instance followed live as one SSE stream: its
history and every one of its tasks.

The AI SDK's message model is one message per task, so a process is not one message of text
and tool parts: its stream is one UI message (``start`` … ``finish``, then ``[DONE]``, valid
for the ``ai`` client) made of ``data-*`` part types:

* ``data-process_event`` ``{proc_inst_id, seq, kind, node_id, activation, data, at}``: one
  per line of the instance's history (``process_history``) in ``seq`` order: steps started
  and completed, gateway decisions (with the verdicts of text conditions), timers, messages,
  incidents, migrations, the instance's end (see
  :class:`~processgpt.domain.process.step.HistoryKind`);
* ``data-process_status`` ``{proc_inst_id, status, current_activity_ids}`` with part ``id``
  = the instance id: a snapshot sent first and whenever it changes (engine-driven instances
  only);
* ``data-task_event`` ``{task_id, seq, event_type, job_id, crew_type, status, data,
  timestamp}``: one per event of any task of the process, each task's in ``seq`` order
  (the interleaving across tasks is the order the stream read them in);
* ``data-task_status`` ``{task_id, status, agent_orch, activity_id, activity_name, attempts,
  last_seq, output, error}`` with part ``id`` = the task id: a snapshot sent when the stream
  first sees a task and whenever its status changes (the AI SDK replaces a data part that has
  the same type and id).

**Cursor.** The SSE ``id`` of every ``data-process_event`` and ``data-task_event`` frame is
the stream's whole position, comma-separated: ``h:<seq>`` for the history (left out at 0),
then ``<task id hex>:<seq>`` for every task with events delivered (tasks at 0 are left out).
A per-task ``seq`` is the only order a task's log guarantees: ``events.id`` is assigned at
insert, not at commit, so concurrent workers can commit a lower id after a higher one and a
global id cursor could skip events; history ``seq`` is assigned under the instance's row
lock, so it commits in order. With ``Last-Event-ID`` set to such a cursor, the stream resumes
exactly after it: no event or history line repeated or lost. Snapshots and ``start`` carry
no id and are sent again on every connection.

**Following.** Each committed step of the instance NOTIFYs ``processgpt_process`` and each
task's writes ``processgpt_events``; the :class:`~processgpt.db.hub.EventHub` wakes the
stream for both. On every wake-up, and at least every ``discover_interval`` seconds, the
stream reads the instance and its task list (which is how tasks created by later steps are
found), then the history after its cursor, then each task's new events. ``: heartbeat``
comments are sent after ``heartbeat`` seconds without a frame.

**End.** An engine-driven instance: when it is COMPLETED or CANCELLED, every task has ended
(DONE, FAILED or CANCELLED) and all history lines and events were sent; ``finishReason`` is
``stop`` for COMPLETED, ``other`` for CANCELLED. An INCIDENT keeps the stream open (it can be
resolved), as does a step waiting for a person (TODO), a timer or a message. An instance of
the one-task form: when every task has ended, or the instance is no longer NEW or RUNNING and
its tasks have ended; ``finishReason`` is ``stop`` when every task is DONE, ``error`` when one
FAILED, ``other`` otherwise.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from processgpt.db.hub import EventHub
from processgpt.db.processes import ProcessRepository
from processgpt.domain.errors import InvalidInput
from processgpt.domain.events import Event
from processgpt.domain.process.instance import HistoryLine
from processgpt.domain.task import TaskStatus
from processgpt.protocols import ai_sdk
from processgpt.runtime.process_service import ProcessService

MAX_CURSOR_TASKS = 1000
"""Most tasks a cursor may name (a ``Last-Event-ID`` is a request header)."""
_OPEN_PROCESS = frozenset({"NEW", "RUNNING"})
_ENDED_PROCESS = frozenset({"COMPLETED", "CANCELLED"})
_PAGE = 500
_HISTORY = "h"


@dataclass
class Cursor:
    """Where a process stream is: the last history ``seq`` sent, and per task the last event
    ``seq`` sent."""

    history: int = 0
    tasks: dict[uuid.UUID, int] = field(default_factory=dict)


def encode_cursor(cursor: Cursor) -> str:
    """``h:<seq>,<task id hex>:<seq>,…`` (parts at 0 left out), tasks in a stable order."""
    items = [f"{_HISTORY}:{cursor.history}"] if cursor.history > 0 else []
    items += [f"{tid.hex}:{seq}" for tid, seq in sorted(cursor.tasks.items()) if seq > 0]
    return ",".join(items)


def _seq(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def decode_cursor(text: str) -> Cursor:
    """The cursor of a ``Last-Event-ID``; :class:`InvalidInput` when it is not one."""
    cursor = Cursor()
    if not text.strip():
        return cursor
    items = text.split(",")
    if len(items) > MAX_CURSOR_TASKS + 1:
        raise InvalidInput(f"Last-Event-ID names more than {MAX_CURSOR_TASKS} tasks")
    for item in items:
        name, _, seq_text = item.strip().partition(":")
        seq = _seq(seq_text)
        tid: uuid.UUID | None = None
        if name != _HISTORY:
            with contextlib.suppress(ValueError):
                tid = uuid.UUID(hex=name)
        if seq is None or (tid is None and name != _HISTORY):
            raise InvalidInput(
                "Last-Event-ID must be a process stream cursor (h:<seq>,<task id>:<seq>,…)"
            )
        if tid is None:
            cursor.history = seq
        else:
            cursor.tasks[tid] = seq
    return cursor


def _history_part(proc_inst_id: uuid.UUID, line: HistoryLine) -> ai_sdk.Part:
    return {
        "type": "data-process_event",
        "data": {
            "proc_inst_id": str(proc_inst_id),
            "seq": line.seq,
            "kind": line.kind,
            "node_id": line.node_id,
            "activation": line.activation,
            "data": dict(line.data),
            "at": line.at.isoformat(),
        },
    }


def _process_status_part(proc_inst_id: uuid.UUID, status: str, current: list[str]) -> ai_sdk.Part:
    return {
        "type": "data-process_status",
        "id": str(proc_inst_id),
        "data": {
            "proc_inst_id": str(proc_inst_id),
            "status": status,
            "current_activity_ids": current,
        },
    }


def _event_part(event: Event) -> ai_sdk.Part:
    return {
        "type": "data-task_event",
        "data": {
            "task_id": str(event.todo_id),
            "seq": event.seq,
            "event_type": event.event_type,
            "job_id": event.job_id,
            "crew_type": event.crew_type,
            "status": event.status,
            "data": event.data,
            "timestamp": event.timestamp.isoformat(),
        },
    }


def _status_part(row: Mapping[str, Any]) -> ai_sdk.Part:
    status = row["status"]
    return ai_sdk.task_status_part(
        task_id=str(row["id"]),
        status=status,
        agent_orch=row["agent_orch"],
        activity_id=row["activity_id"],
        activity_name=row["activity_name"],
        attempts=row["attempts"],
        last_seq=row["last_seq"],
        output=row["output"],
        error=row["error"],
    )


def _finish_reason(statuses: list[str]) -> str:
    if statuses and all(s == TaskStatus.DONE for s in statuses):
        return "stop"
    return "error" if TaskStatus.FAILED in statuses else "other"


def _ended(rows: list[dict[str, Any]]) -> str | None:
    """The ``finishReason`` when the instance of this snapshot is over, else None."""
    first = rows[0]
    tasks = [r for r in rows if r["id"] is not None]
    if not all(TaskStatus(r["status"]).is_terminal for r in tasks):
        return None
    if first["driven"]:
        if first["proc_status"] not in _ENDED_PROCESS:
            return None
        return "stop" if first["proc_status"] == "COMPLETED" else "other"
    if tasks or first["proc_status"] not in _OPEN_PROCESS:
        return _finish_reason([r["status"] for r in tasks])
    return None


async def sse_process_stream(
    hub: EventHub,
    processes: ProcessRepository,
    service: ProcessService,
    tenant_id: str,
    proc_inst_id: uuid.UUID,
    *,
    cursor: Cursor | None = None,
    heartbeat: float = 15.0,
    discover_interval: float = 1.0,
) -> AsyncIterator[str]:
    """Frames of the process stream after ``cursor`` (see the module's contract)."""
    position = Cursor(cursor.history, dict(cursor.tasks)) if cursor else Cursor()
    statuses: dict[uuid.UUID, str] = {}
    shown: tuple[str, list[str]] | None = None
    wake = asyncio.Event()
    with contextlib.ExitStack() as watches:
        watches.enter_context(hub.watch_process(proc_inst_id, wake))
        watched: set[uuid.UUID] = set()
        yield ai_sdk.frame({"type": "start", "messageId": str(proc_inst_id)})
        last_sent = time.monotonic()
        while True:
            wake.clear()
            # The snapshot first, then what it implies was committed: history and events
            # read afterwards include everything up to it (see "End").
            rows = await processes.stream_state(tenant_id, proc_inst_id)
            if not rows:  # the instance was deleted while followed
                yield ai_sdk.frame({"type": "finish", "finishReason": "other"})
                yield ai_sdk.DONE
                return
            first = rows[0]
            if first["driven"]:
                status = (first["proc_status"], list(first["current_activity_ids"]))
                if status != shown:
                    shown = status
                    yield ai_sdk.frame(_process_status_part(proc_inst_id, *status))
                    last_sent = time.monotonic()
                async for line in _history(service, tenant_id, proc_inst_id, position.history):
                    position.history = line.seq
                    yield ai_sdk.frame(_history_part(proc_inst_id, line), encode_cursor(position))
                    last_sent = time.monotonic()
            for row in (r for r in rows if r["id"] is not None):
                task_id: uuid.UUID = row["id"]
                if task_id not in watched:
                    watches.enter_context(hub.watch(task_id, wake))
                    watched.add(task_id)
                async for event in _events(hub, tenant_id, task_id, position, row["last_seq"]):
                    position.tasks[task_id] = event.seq
                    yield ai_sdk.frame(_event_part(event), encode_cursor(position))
                    last_sent = time.monotonic()
                if statuses.get(task_id) != row["status"]:
                    statuses[task_id] = row["status"]
                    yield ai_sdk.frame(_status_part(row))
                    last_sent = time.monotonic()
            reason = _ended(rows)
            if reason is not None:
                yield ai_sdk.frame({"type": "finish", "finishReason": reason})
                yield ai_sdk.DONE
                return
            wait = min(discover_interval, max(0.0, last_sent + heartbeat - time.monotonic()))
            with contextlib.suppress(TimeoutError):  # not wait_for: see EventHub.follow
                async with asyncio.timeout(wait):
                    await wake.wait()
            if time.monotonic() - last_sent >= heartbeat:
                yield ai_sdk.HEARTBEAT
                last_sent = time.monotonic()


async def _history(
    service: ProcessService, tenant_id: str, proc_inst_id: uuid.UUID, after: int
) -> AsyncIterator[HistoryLine]:
    """Every history line after ``after`` committed by now, page by page."""
    while True:
        page = await service.history(tenant_id, proc_inst_id, after_seq=after, limit=_PAGE)
        for line in page:
            yield line
        if len(page) < _PAGE:
            return
        after = page[-1].seq


async def _events(
    hub: EventHub, tenant_id: str, task_id: uuid.UUID, position: Cursor, upto: int
) -> AsyncIterator[Event]:
    """The task's events after its position, up to ``upto`` (the snapshot's last seq, so a
    status sent afterwards is never older than the events before it)."""
    after = position.tasks.get(task_id, 0)
    while after < upto:
        page = await hub.events(tenant_id, task_id, after=after, limit=min(_PAGE, upto - after))
        if not page:
            return
        for event in page:
            yield event
        after = page[-1].seq

"""``GET /v1/processes/{id}/stream``: every task of a process instance, followed live as one SSE
stream.

The AI SDK's message model is one message per task, so a process is not one message of text
and tool parts: its stream is one UI message (``start`` … ``finish``, then ``[DONE]``, valid
for the ``ai`` client) made of two ``data-*`` part types:

* ``data-task_event`` ``{task_id, seq, event_type, job_id, crew_type, status, data,
  timestamp}``: one per event of any task of the process, each task's in ``seq`` order
  (the interleaving across tasks is the order the stream read them in);
* ``data-task_status`` ``{task_id, status, agent_orch, activity_id, activity_name, attempts,
  last_seq, output, error}`` with part ``id`` = the task id: a snapshot sent when the stream
  first sees a task and whenever its status changes (the AI SDK replaces a data part that has
  the same type and id).

**Cursor.** The SSE ``id`` of every ``data-task_event`` frame is the stream's whole position:
``<task id hex>:<seq>`` for every task with events delivered, comma-separated (tasks at 0
are left out). A per-task ``seq`` is the only order the log guarantees: ``events.id`` is
assigned at insert, not at commit, so concurrent workers can commit a lower id after a
higher one and a global id cursor could skip events. With ``Last-Event-ID`` set to such a
cursor, the stream resumes exactly after it: no event repeated or lost. Status snapshots and
``start`` carry no id and are sent again on every connection.

**Following.** Task logs are followed through the :class:`~processgpt.db.hub.EventHub`
(NOTIFY wake-ups per task); the process's task list is read again on every wake-up and at
least every ``discover_interval`` seconds, which is how tasks added to the process later are
found. ``: heartbeat`` comments are sent after ``heartbeat`` seconds without a frame.

**End.** The stream finishes when every task of the instance has ended (DONE, FAILED or
CANCELLED) and all their events were sent, or when the instance itself is no longer NEW or
RUNNING and its tasks have ended. Process instances do not complete by themselves yet (the
multi-step engine will do that), so "all tasks ended" is the usual end; a task added to the
instance after that is not followed. ``finishReason`` is ``stop`` when every task is DONE,
``error`` when one FAILED, ``other`` otherwise. A task waiting for input keeps the stream
open.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from processgpt.db.hub import EventHub
from processgpt.db.processes import ProcessRepository
from processgpt.domain.errors import InvalidInput
from processgpt.domain.events import Event
from processgpt.domain.task import TaskStatus
from processgpt.protocols import ai_sdk

MAX_CURSOR_TASKS = 1000
"""Most tasks a cursor may name (a ``Last-Event-ID`` is a request header)."""
_OPEN_PROCESS = frozenset({"NEW", "RUNNING"})
_PAGE = 500

Cursor = dict[uuid.UUID, int]


def encode_cursor(cursor: Cursor) -> str:
    """``<task id hex>:<seq>,…`` for the tasks with ``seq > 0``, in a stable order."""
    return ",".join(f"{tid.hex}:{seq}" for tid, seq in sorted(cursor.items()) if seq > 0)


def decode_cursor(text: str) -> Cursor:
    """The cursor of a ``Last-Event-ID``; :class:`InvalidInput` when it is not one."""
    cursor: Cursor = {}
    if not text.strip():
        return cursor
    items = text.split(",")
    if len(items) > MAX_CURSOR_TASKS:
        raise InvalidInput(f"Last-Event-ID names more than {MAX_CURSOR_TASKS} tasks")
    for item in items:
        task, _, seq = item.strip().partition(":")
        try:
            tid = uuid.UUID(hex=task)
        except ValueError:
            tid = None
        if tid is None or not (seq.isascii() and seq.isdigit()) or len(seq) > 18:
            raise InvalidInput(
                "Last-Event-ID must be a process stream cursor (<task id>:<seq>,…)"
            ) from None
        cursor[tid] = int(seq)
    return cursor


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


async def sse_process_stream(
    hub: EventHub,
    processes: ProcessRepository,
    tenant_id: str,
    proc_inst_id: uuid.UUID,
    *,
    cursor: Cursor | None = None,
    heartbeat: float = 15.0,
    discover_interval: float = 1.0,
) -> AsyncIterator[str]:
    """Frames of the process stream after ``cursor`` (see the module's contract)."""
    position: Cursor = dict(cursor or {})
    statuses: dict[uuid.UUID, str] = {}
    wake = asyncio.Event()
    with contextlib.ExitStack() as watches:
        watched: set[uuid.UUID] = set()
        yield ai_sdk.frame({"type": "start", "messageId": str(proc_inst_id)})
        last_sent = time.monotonic()
        while True:
            wake.clear()
            rows = await processes.stream_state(tenant_id, proc_inst_id)
            if not rows:  # the instance was deleted while followed
                yield ai_sdk.frame({"type": "finish", "finishReason": "other"})
                yield ai_sdk.DONE
                return
            tasks = [r for r in rows if r["id"] is not None]
            for row in tasks:
                task_id: uuid.UUID = row["id"]
                if task_id not in watched:
                    watches.enter_context(hub.watch(task_id, wake))
                    watched.add(task_id)
                async for event in _events(hub, tenant_id, task_id, position, row["last_seq"]):
                    position[task_id] = event.seq
                    yield ai_sdk.frame(_event_part(event), encode_cursor(position))
                    last_sent = time.monotonic()
                if statuses.get(task_id) != row["status"]:
                    statuses[task_id] = row["status"]
                    yield ai_sdk.frame(_status_part(row))
                    last_sent = time.monotonic()
            all_ended = all(TaskStatus(r["status"]).is_terminal for r in tasks)
            if all_ended and (tasks or rows[0]["proc_status"] not in _OPEN_PROCESS):
                reason = _finish_reason([r["status"] for r in tasks])
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


async def _events(
    hub: EventHub, tenant_id: str, task_id: uuid.UUID, position: Cursor, upto: int
) -> AsyncIterator[Event]:
    """The task's events after its position, up to ``upto`` (the snapshot's last seq, so a
    status sent afterwards is never older than the events before it)."""
    after = position.get(task_id, 0)
    while after < upto:
        page = await hub.events(tenant_id, task_id, after=after, limit=min(_PAGE, upto - after))
        if not page:
            return
        for event in page:
            yield event
        after = page[-1].seq

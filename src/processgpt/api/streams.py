"""SSE: a task's event log as a Vercel AI SDK UI message stream, replayed then followed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from processgpt.db.hub import TERMINAL, EventHub
from processgpt.domain.events import Event
from processgpt.domain.task import Task, TaskStatus
from processgpt.protocols import ai_sdk

_FIRST_REPORTED = TERMINAL | {TaskStatus.INPUT_REQUIRED}
_ALL = frozenset(TaskStatus)


async def sse_task_stream(
    hub: EventHub,
    tenant_id: str,
    task_id: uuid.UUID,
    *,
    after: int = 0,
    heartbeat: float = 15.0,
    file_url: Callable[[dict[str, Any]], str | None] | None = None,
) -> AsyncIterator[str]:
    """Frames for one task, until it ends (DONE, FAILED or CANCELLED).

    Each event's last frame carries ``id: <seq>`` and data (every event gives a part);
    resuming after a seq first re-opens the parts that were open there, so a fresh parser
    stays valid. When the task waits for input the stream says so with a
    ``data-task_status`` snapshot (:func:`~processgpt.protocols.ai_sdk.task_status_part`) and
    goes on following; from then on every status change it sees is sent the same way, the
    final one included, before the finish. Snapshots carry no SSE id and are views of the
    task's row, not of its log: a new connection sends the current one again if the task is
    waiting, and a replay does not show a wait that is over. ``file_url``: the signed link of
    a file an agent sent (a ``file`` part; made when the part is sent, so a replay gets links
    that work)."""
    stream = ai_sdk.UIMessageStream(message_id=str(task_id), file_url=file_url)
    if after > 0:
        await _replay_state(hub, stream, tenant_id, task_id, after)
    for part in stream.reopen() if after > 0 else stream.start():
        yield ai_sdk.frame(part)
    reported: TaskStatus | None = None
    while True:
        # Follow until the task ends or, once a status was reported, until it changes.
        until = _FIRST_REPORTED if reported is None else _ALL - {reported}
        task: Task | None = None
        async for item in hub.follow(
            tenant_id, task_id, after=after, until=until, idle_timeout=heartbeat
        ):
            if item is None:
                yield ai_sdk.HEARTBEAT
            elif isinstance(item, Event):
                for text in event_frames(stream, item):
                    yield text
                after = item.seq
            else:
                task = item  # the last item: follow ends with it
        if task is None:  # follow ends only with the task: never expected
            raise RuntimeError(f"the stream of task {task_id} ended before the task")
        if reported is not None or not task.status.is_terminal:
            yield ai_sdk.frame(ai_sdk.status_of(task))
            reported = task.status
        if task.status.is_terminal:
            for part in stream.finish(task):
                yield ai_sdk.frame(part)
            yield ai_sdk.DONE
            return


def event_frames(stream: ai_sdk.UIMessageStream, event: Event) -> list[str]:
    """The event's frames: its last one carries its seq as the SSE id."""
    parts = stream.encode(event)
    last = len(parts) - 1
    return [ai_sdk.frame(part, event.seq if i == last else None) for i, part in enumerate(parts)]


async def _replay_state(
    hub: EventHub, stream: ai_sdk.UIMessageStream, tenant_id: str, task_id: uuid.UUID, upto: int
) -> None:
    """Feed the encoder the events up to ``upto`` (their parts are not sent again)."""
    seen = 0
    while seen < upto:
        page = await hub.events(tenant_id, task_id, after=seen, limit=min(500, upto - seen))
        if not page:
            return
        for event in page:
            stream.encode(event)
        seen = page[-1].seq

"""SSE: a task's event log as a Vercel AI SDK UI message stream, replayed then followed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from processgpt.db.hub import EventHub
from processgpt.domain.events import Event
from processgpt.protocols import ai_sdk


async def sse_task_stream(
    hub: EventHub, tenant_id: str, task_id: uuid.UUID, *, after: int = 0, heartbeat: float = 15.0
) -> AsyncIterator[str]:
    """Frames for one task. Each event's last frame carries ``id: <seq>``; resuming after a
    seq first re-opens the parts that were open there, so a fresh parser stays valid."""
    stream = ai_sdk.UIMessageStream(message_id=str(task_id))
    if after > 0:
        await _replay_state(hub, stream, tenant_id, task_id, after)
        opening = stream.reopen()
    else:
        opening = stream.start()
    for part in opening:
        yield ai_sdk.frame(part)
    async for item in hub.follow(tenant_id, task_id, after=after, idle_timeout=heartbeat):
        if item is None:
            yield ai_sdk.HEARTBEAT
        elif isinstance(item, Event):
            parts = stream.encode(item)
            if not parts:
                yield f"id: {item.seq}\n\n"  # moves the client's cursor, dispatches nothing
            for i, part in enumerate(parts):
                yield ai_sdk.frame(part, item.seq if i == len(parts) - 1 else None)
        else:
            for part in stream.finish(item):
                yield ai_sdk.frame(part)
            yield ai_sdk.DONE


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

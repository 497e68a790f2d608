"""``/v1/notifications``: what people are told (a work item assigned to them or their role,
a task that needs their input, a process that completed or has an incident), listed, marked
read, and followed live.

Credentials carry a tenant and a role, not a person: ``user`` and ``role`` are filters the
caller names (as on the worklist). With ``user`` the list is that person's inbox: what is
addressed to them, to ``role`` when given, and to everyone in the tenant; with ``role``
alone, that role's and everyone's; with neither, every notification of the tenant. Read marks
are one per notification (not per reader).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import StreamingResponse

from processgpt.api.deps import HubDep, NotificationsDep, SettingsDep, Tenant
from processgpt.api.errors import AUTHENTICATED, responses
from processgpt.db.notifications import NotificationRepository, StreamCursor
from processgpt.domain.errors import DatabaseUnavailable, InvalidInput
from processgpt.protocols.webhooks import MarkedRead, NotificationPage, NotificationView

router = APIRouter(
    prefix="/v1/notifications", tags=["notifications"], responses=responses(*AUTHENTICATED)
)

User = Annotated[str | None, Query(min_length=1, max_length=2000, description="for this person")]
Role = Annotated[str | None, Query(min_length=1, max_length=200, description="for this role")]

_PAGE = 200
_HELD_MAX_WAIT = 1.0

STREAM_OPENAPI: dict[int | str, dict[str, object]] = {
    200: {
        "description": "Server-sent events: `event: notification`, `id: <cursor>`, `data:` "
        "a notification as JSON; `: heartbeat` comments while idle.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.get("", responses=responses(422))
async def list_notifications(
    tenant_id: Tenant,
    repo: NotificationsDep,
    *,
    user: User = None,
    role: Role = None,
    unread: Annotated[bool, Query(description="only those not read yet")] = False,
    cursor: Annotated[str | None, Query(max_length=30)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> NotificationPage:
    """Newest first, a page at a time (pass `next_cursor` as `cursor`)."""
    before = None
    if cursor:
        if not cursor.isdigit() or len(cursor) > 19:
            raise InvalidInput("cursor is not a cursor of this list", field="cursor")
        before = int(cursor)
    items = await repo.inbox(
        tenant_id, user=user, role=role, unread=unread, before=before, limit=limit
    )
    next_cursor = str(items[-1].id) if len(items) == limit else None
    return NotificationPage(items=items, next_cursor=next_cursor)


@router.post("/read", responses=responses(422))
async def mark_all_read(
    tenant_id: Tenant, repo: NotificationsDep, user: User = None, role: Role = None
) -> MarkedRead:
    """Mark read every unread notification the same filters list."""
    return MarkedRead(marked=await repo.mark_all_read(tenant_id, user=user, role=role))


@router.post("/{notification_id}/read", responses=responses(404, 422))
async def mark_read(
    notification_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    tenant_id: Tenant,
    repo: NotificationsDep,
) -> NotificationView:
    """Mark one notification read (again: no change). 404 `notification_not_found` for
    another tenant's."""
    return await repo.mark_read(tenant_id, notification_id)


@router.get(
    "/stream",
    tags=["streams"],
    response_class=StreamingResponse,
    responses={**STREAM_OPENAPI, **responses(422)},
)
async def notification_stream(
    tenant_id: Tenant,
    repo: NotificationsDep,
    hub: HubDep,
    *,
    settings: SettingsDep,
    user: User = None,
    role: Role = None,
    after: Annotated[str | None, Query(max_length=50, description="a cursor")] = None,
    last_event_id: Annotated[str | None, Header(max_length=50)] = None,
) -> StreamingResponse:
    """New notifications as they commit (same filters as the list). Each frame's `id` is a
    cursor: reconnect with it as `Last-Event-ID` (or `after`) to resume exactly after it;
    without one the stream starts now."""
    given = last_event_id or after
    start = StreamCursor.parse(given) if given else None
    return StreamingResponse(
        _frames(
            repo,
            hub=hub,
            tenant_id=tenant_id,
            cursor=start,
            user=user,
            role=role,
            heartbeat=settings.sse_heartbeat,
        ),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _frames(
    repo: NotificationRepository,
    *,
    hub: HubDep,
    tenant_id: str,
    cursor: StreamCursor | None,
    user: str | None,
    role: str | None,
    heartbeat: float,
) -> AsyncIterator[str]:
    wake = asyncio.Event()
    try:
        with hub.watch_notifications(tenant_id, wake):
            if cursor is None:
                cursor = await repo.horizon()
                yield f"id: {cursor}\n: stream started\n\n"
            held_wait = 0.05
            while True:
                wake.clear()
                page, held = await repo.after(tenant_id, cursor, user=user, role=role, limit=_PAGE)
                for position, item in page:
                    cursor = position
                    data = json.dumps(item.model_dump(mode="json"), separators=(",", ":"))
                    yield f"id: {position}\nevent: notification\ndata: {data}\n\n"
                if len(page) == _PAGE:
                    continue
                # Rows that wait for an older transaction: look again soon (backing off).
                timeout = held_wait if held else heartbeat
                held_wait = min(held_wait * 2, _HELD_MAX_WAIT) if held else 0.05
                try:
                    async with asyncio.timeout(timeout):
                        await wake.wait()
                except TimeoutError:
                    if not held:
                        yield ": heartbeat\n\n"
    except DatabaseUnavailable:
        return  # the client resumes with its last id and misses nothing

"""Notifications (seed 001's ``notifications``, migration 0024): read, marked read, and
followed live.

Rows are written by the database's triggers in the transaction of the change that causes
them (a work item assigned, a task that needs input, a process that completed or has an
incident). Who they are for is what the process said: the work item's ``user_id`` and
``role``; process notifications are for everyone in the tenant. The API's credentials carry
no person, so readers filter by a user and a role they name (like the worklist): any member
of a tenant may read the tenant's notifications, and "read" is one mark per notification.

The live order is the stream cursor ``<xid>-<id>`` (see :data:`STREAM_CURSOR`): rows come in
(writing transaction, id) order and only once every older transaction has finished, so a
resumed stream never misses a row that committed late.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import InvalidInput, NotificationNotFound
from processgpt.protocols.webhooks import NotificationView

NOTIFICATIONS_CHANNEL = "processgpt_notifications"
"""NOTIFY channel: notifications of the tenant named in the payload were written."""

STREAM_CURSOR = re.compile(r"^([0-9]{1,20})-([0-9]{1,19})$")


@dataclass(frozen=True, order=True)
class StreamCursor:
    """A position in a tenant's notification stream."""

    xid: int
    id: int

    def __str__(self) -> str:
        return f"{self.xid}-{self.id}"

    @classmethod
    def parse(cls, text: str) -> StreamCursor:
        match = STREAM_CURSOR.match(text.strip())
        if match is None:
            raise InvalidInput(
                "the cursor must be a notification stream cursor (<xid>-<id>)",
                field="Last-Event-ID",
            )
        return cls(int(match[1]), int(match[2]))


def view(row: Mapping[str, Any]) -> NotificationView:
    return NotificationView(
        id=row["id"],
        type=row["type"],
        user_id=row["user_id"],
        role=row["role"],
        todo_id=row["todo_id"],
        proc_inst_id=row["proc_inst_id"],
        message=row["message"],
        data=row["data"],
        read=row["read_at"] is not None,
        read_at=row["read_at"],
        created_at=row["created_at"],
    )


class NotificationRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def inbox(
        self,
        tenant_id: str,
        *,
        user: str | None = None,
        role: str | None = None,
        unread: bool = False,
        before: int | None = None,
        limit: int = 50,
    ) -> list[NotificationView]:
        """Newest first: for ``user`` (theirs, their ``role``'s, everyone's), for ``role``,
        or all of the tenant's when neither is given."""
        rows = await self.db.fetch(
            QUERIES["list_notifications"], tenant_id, user, role, unread, before, limit
        )
        return [view(r) for r in rows]

    async def mark_read(self, tenant_id: str, notification_id: int) -> NotificationView:
        row = await self.db.fetchrow(QUERIES["mark_notification_read"], tenant_id, notification_id)
        if row is None:
            raise NotificationNotFound(notification_id)
        return view(row)

    async def mark_all_read(
        self, tenant_id: str, *, user: str | None = None, role: str | None = None
    ) -> int:
        """Mark read what :meth:`list` would list unread; how many were marked."""
        count: int = await self.db.fetchval(
            QUERIES["mark_notifications_read"], tenant_id, user, role
        )
        return count

    async def horizon(self) -> StreamCursor:
        """The position of a stream that starts now (only what commits from now on)."""
        xid = await self.db.fetchval(QUERIES["notifications_horizon"])
        return StreamCursor(int(xid), 0)

    async def after(
        self,
        tenant_id: str,
        cursor: StreamCursor,
        *,
        user: str | None = None,
        role: str | None = None,
        limit: int = 200,
    ) -> tuple[list[tuple[StreamCursor, NotificationView]], bool]:
        """The next notifications after ``cursor`` in stream order, and whether more have
        committed but wait for an older transaction to finish (look again shortly)."""
        rows = await self.db.fetch(
            QUERIES["notifications_after"],
            tenant_id,
            str(cursor.xid),
            cursor.id,
            user,
            role,
            limit,
        )
        page = [(StreamCursor(int(r["xid_text"]), r["id"]), view(r)) for r in rows]
        last = page[-1][0] if page else cursor
        held: bool = len(page) < limit and await self.db.fetchval(
            QUERIES["notifications_held"], tenant_id, str(last.xid), last.id
        )
        return page, held

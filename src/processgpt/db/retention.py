"""Retention in the database: which tenants' finished work has expired, and its deletion in
short batches (the statements are in ``queries/retention.sql``).

One deployment runs one retention pass at a time: :meth:`RetentionRepository.exclusive`
holds a session-level advisory lock on a connection of its own for the whole pass; a process
that dies mid-pass loses its connection, and the lock with it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES

log = logging.getLogger(__name__)

RETENTION_LOCK_KEY = 0x70677072  # "pgpr": the advisory lock one retention pass holds
"""Distinct from the migrations' lock (``0x70677074``)."""

_BEFORE_ALL = (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))


@dataclass(frozen=True)
class TenantCutoff:
    """Tenant ``tenant_id``'s finished work that ended before ``cutoff`` has expired."""

    tenant_id: str
    cutoff: datetime


@dataclass
class Removed:
    """What a batch, a tenant's pass or a whole pass removed (or, in a preview, would)."""

    tasks: int = 0
    events: int = 0
    """The events of those tasks (a task's events are numbered 1..last_seq)."""
    instances: int = 0
    """Process instances, child instances included."""
    notifications: int = 0
    deliveries: int = 0
    """Webhook deliveries that ended (delivered or dead)."""
    files: int = 0
    """Files of the deleted tasks and instances (rows; their bytes go after the batch)."""
    file_keys: list[tuple[str, str]] = field(default_factory=list)
    """A batch's deleted files as (storage, key): the bytes to delete (not summed by add)."""

    def add(self, other: Removed) -> None:
        self.tasks += other.tasks
        self.events += other.events
        self.instances += other.instances
        self.notifications += other.notifications
        self.deliveries += other.deliveries
        self.files += other.files

    @property
    def empty(self) -> bool:
        return not (
            self.tasks
            or self.events
            or self.instances
            or self.notifications
            or self.deliveries
            or self.files
        )


class RetentionSession:
    """The connection of one pass, holding the deployment's retention lock. Each call is its
    own short transaction, with ``lock_timeout`` so that a row some other transaction holds
    fails the batch (to be tried again) instead of making it wait."""

    def __init__(self, conn: asyncpg.Connection, lock_timeout: float) -> None:
        self._conn = conn
        self._lock_timeout = f"{int(lock_timeout * 1000)}ms"

    async def _batch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._conn.transaction():
            await self._conn.execute(
                "SELECT set_config('lock_timeout', $1, true)", self._lock_timeout
            )
            return list(await self._conn.fetch(QUERIES[query], *args))

    async def delete_tasks(self, cutoff: TenantCutoff, batch: int) -> AsyncIterator[Removed]:
        """Delete the tenant's expired tasks outside process instances, ``batch`` at a time,
        yielding what each batch removed; ends after a batch smaller than ``batch``."""
        after = _BEFORE_ALL
        while True:
            rows = await self._batch(
                "retention_delete_tasks", cutoff.tenant_id, cutoff.cutoff, batch, *after
            )
            if rows:
                last = max(rows, key=lambda r: (r["created_at"], r["id"]))
                after = (last["created_at"], last["id"])
                keys = [_key(f) for r in rows for f in r["files"]]
                yield Removed(
                    tasks=len(rows),
                    events=sum(r["last_seq"] for r in rows),
                    files=len(keys),
                    file_keys=keys,
                )
            if len(rows) < batch:
                return

    async def delete_instances(self, cutoff: TenantCutoff, batch: int) -> AsyncIterator[Removed]:
        """Delete the tenant's expired top-level instances (with their trees: child
        instances, tasks, events, history, timers), ``batch`` top-level instances at a time."""
        while True:
            rows = await self._batch(
                "retention_delete_instances", cutoff.tenant_id, cutoff.cutoff, batch
            )
            row = rows[0]
            keys = [_key(f) for f in row["files"]]
            yield Removed(
                tasks=row["tasks"],
                events=row["events"],
                instances=row["instances"],
                files=len(keys),
                file_keys=keys,
            )
            if row["roots"] < batch:
                return

    async def delete_notices(self, cutoff: TenantCutoff, batch: int) -> AsyncIterator[Removed]:
        """Delete the tenant's notifications written before the cutoff and its webhook
        deliveries that ended before it, up to ``batch`` of each a transaction."""
        while True:
            rows = await self._batch(
                "retention_delete_notices", cutoff.tenant_id, cutoff.cutoff, batch
            )
            row = rows[0]
            yield Removed(notifications=row["notifications"], deliveries=row["deliveries"])
            if row["notifications"] < batch and row["deliveries"] < batch:
                return


class RetentionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def cutoffs(self, default_days: int) -> list[TenantCutoff]:
        """Every tenant whose finished work expires (its own retention, else
        ``default_days``; 0 is forever), with its cutoff by the database's clock."""
        rows = await self.db.fetch(QUERIES["retention_cutoffs"], default_days)
        return [TenantCutoff(r["tenant_id"], r["cutoff"]) for r in rows]

    async def preview(self, cutoff: TenantCutoff) -> Removed:
        """What a pass would delete for ``cutoff``'s tenant now."""
        row = await self.db.fetchrow(QUERIES["retention_preview"], cutoff.tenant_id, cutoff.cutoff)
        assert row is not None
        return Removed(
            tasks=row["tasks"],
            events=row["events"],
            instances=row["instances"],
            files=row["files"],
        )

    @asynccontextmanager
    async def exclusive(
        self, *, lock_timeout: float = 2.0
    ) -> AsyncIterator[RetentionSession | None]:
        """The pass's session, or None when another process's pass holds the lock."""
        async with self.db.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_KEY):
                yield None
                return
            try:
                yield RetentionSession(conn, lock_timeout)
            finally:
                await _unlock(conn)


def _key(value: str) -> tuple[str, str]:
    """``storage:key`` (as the retention queries return a deleted file) as a pair."""
    storage, _, key = value.partition(":")
    return storage, key


async def _unlock(conn: asyncpg.Connection) -> None:
    """Release the pass's lock before the connection goes back to the pool; a connection
    that cannot be told to is closed, which releases it too."""
    try:
        await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_KEY)
    except Exception as exc:  # noqa: BLE001 - handled: closing the connection frees the lock
        log.warning(
            "retention lock not released, closing its connection error=%s", type(exc).__name__
        )
        conn.terminate()

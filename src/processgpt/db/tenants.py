"""Tenants and their operator-set limits (operator-only: see :mod:`processgpt.domain.roles`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import TenantNotFound


@dataclass(frozen=True)
class TenantInfo:
    id: str
    name: str
    max_pending_tasks: int | None
    """NULL: the server's default limit (``PROCESSGPT_MAX_PENDING_TASKS``)."""
    weight: int
    """The tenant's share of the workers when several tenants wait (1 to 1000)."""
    max_tasks_per_second: float | None
    """The most tasks of the tenant the workers start per second; NULL: no limit."""
    created_at: datetime
    retention_days: int | None = None
    """Days finished work is kept; NULL: the deployment's default
    (``PROCESSGPT_RETENTION_DAYS``); 0: forever."""


def _info(row: Any) -> TenantInfo:
    return TenantInfo(
        id=row["id"],
        name=row["name"],
        max_pending_tasks=row["max_pending_tasks"],
        weight=row["weight"],
        max_tasks_per_second=row["max_tasks_per_second"],
        created_at=row["created_at"],
        retention_days=row["retention_days"],
    )


class TenantRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_tenants(self) -> list[TenantInfo]:
        return [_info(r) for r in await self.db.fetch(QUERIES["list_tenants"])]

    async def get(self, tenant_id: str) -> TenantInfo:
        row = await self.db.fetchrow(QUERIES["get_tenant"], tenant_id)
        if row is None:
            raise TenantNotFound(tenant_id)
        return _info(row)

    async def put(
        self,
        tenant_id: str,
        *,
        max_pending_tasks: int | None = None,
        set_limit: bool = False,
        retention_days: int | None = None,
        set_retention: bool = False,
        weight: int | None = None,
        max_tasks_per_second: float | None = None,
        set_rate: bool = False,
    ) -> tuple[TenantInfo, bool]:
        """Create the tenant or update it; ``set_limit``: ``max_pending_tasks`` is given (None
        then means the server default), ``set_retention`` likewise for ``retention_days``;
        ``weight`` None keeps the weight; ``set_rate``: ``max_tasks_per_second`` is given
        (None then means no limit). Returns the tenant and whether it was created."""
        row = await self.db.fetchrow(
            QUERIES["upsert_tenant"],
            tenant_id,
            max_pending_tasks,
            set_limit,
            retention_days,
            set_retention,
            weight,
            max_tasks_per_second,
            set_rate,
        )
        assert row is not None
        return _info(row), bool(row["created"])

    async def ensure(self, tenant_id: str) -> None:
        """Create the tenant if it does not exist."""
        await self.db.execute(QUERIES["ensure_tenant"], tenant_id)

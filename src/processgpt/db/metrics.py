"""The database's side of metrics: the deployment snapshot (computed by one process per
interval, read by all) and a tenant's summary for the console."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The deployment's gauges (``data``: see ``compute_metrics_snapshot``), taken at
    ``taken_at`` (Unix time, the database's clock); ``refreshed``: this call computed it."""

    data: dict[str, Any]
    taken_at: float
    refreshed: bool


class MetricsRepository:
    """``known_agents``: the built-in orchestrators, labelled by name even before a worker
    registered them (so an autoscaler sees their backlog while no worker runs)."""

    def __init__(self, db: Database, known_agents: frozenset[str] = frozenset()) -> None:
        self.db = db
        self._known = sorted(known_agents)

    async def snapshot(self, max_age: float) -> Snapshot | None:
        """The snapshot, recomputed first if it is older than ``max_age`` seconds and no
        other process is recomputing it now (None: none was ever taken, and another process
        is taking the first one)."""
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(QUERIES["read_metrics_snapshot"])
            if row is not None and row["age"] < max_age:
                return Snapshot(row["data"], row["taken_at"], refreshed=False)
            if not await conn.fetchval(QUERIES["lock_metrics_snapshot"]):
                return None if row is None else Snapshot(row["data"], row["taken_at"], False)
            # Another process may have committed a new one between the read and the lock.
            row = await conn.fetchrow(QUERIES["read_metrics_snapshot"])
            if row is not None and row["age"] < max_age:
                return Snapshot(row["data"], row["taken_at"], refreshed=False)
            data = await conn.fetchval(QUERIES["compute_metrics_snapshot"], self._known)
            await conn.execute(QUERIES["store_metrics_snapshot"], data)
            row = await conn.fetchrow(QUERIES["read_metrics_snapshot"])
            assert row is not None
            return Snapshot(row["data"], row["taken_at"], refreshed=True)

    async def compute_plan(self) -> str:
        """EXPLAIN of the snapshot's computation (for tests and operators)."""
        rows = await self.db.fetch("EXPLAIN " + QUERIES["compute_metrics_snapshot"], self._known)
        return "\n".join(r[0] for r in rows)

    async def tenant_queue(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's open tasks: ``{agent, status, n, oldest}`` rows (``oldest``: seconds
        the oldest due PENDING task has waited, None for other statuses)."""
        rows = await self.db.fetch(QUERIES["tenant_queue_summary"], tenant_id)
        return [dict(r) for r in rows]

    async def tenant_timings(
        self, tenant_id: str, window_seconds: float, limit: int
    ) -> list[dict[str, Any]]:
        """Per agent, the tenant's tasks created within ``window_seconds`` that ended (at most
        its newest ``limit``): ``{agent, n, done, failed, cancelled, wait, run}``, ``wait``
        and ``run`` as [p50, p90, p99] seconds."""
        rows = await self.db.fetch(
            QUERIES["tenant_timing_summary"], tenant_id, window_seconds, limit
        )
        return [dict(r) for r in rows]

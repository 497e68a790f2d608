"""Keeps this process's deployment gauges (:func:`processgpt.metrics.set_queue_snapshot`)
equal to the database's snapshot, refreshing that snapshot when it is due.

Every ``interval`` seconds each process running a :class:`SnapshotLoop` reads the snapshot
row; the first one to find it older than ``interval`` recomputes it under an advisory lock
(:meth:`~processgpt.db.metrics.MetricsRepository.snapshot`). So the queue is counted once per
interval per deployment, however many processes are scraped and however often.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from processgpt.db.metrics import MetricsRepository, Snapshot
from processgpt.db.retry import log_db_error
from processgpt.metrics import QueueSnapshot, describe_extra_gauge, set_queue_snapshot
from processgpt.runtime.background import background

log = logging.getLogger(__name__)


def queue_snapshot(snapshot: Snapshot) -> QueueSnapshot:
    """The gauges' view of a database snapshot."""
    data = snapshot.data

    def ints(key: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in _mapping(data.get(key)).items()}

    return QueueSnapshot(
        taken_at=snapshot.taken_at,
        pending=ints("pending"),
        pending_due=ints("pending_due"),
        in_progress=ints("in_progress"),
        input_required=ints("input_required"),
        oldest_pending_seconds={
            str(k): float(v) for k, v in _mapping(data.get("oldest_pending_seconds")).items()
        },
        instances=ints("instances"),
        incidents_open=int(data.get("incidents_open") or 0),
        extra=_webhook_gauges(_mapping(data.get("webhooks"))),
    )


describe_extra_gauge(
    "processgpt_webhook_deliveries_pending",
    "Webhook deliveries waiting to be sent (due now, or waiting for a retry)",
)
describe_extra_gauge(
    "processgpt_webhook_deliveries_due", "Webhook deliveries a worker may send now"
)
describe_extra_gauge(
    "processgpt_webhook_oldest_due_seconds",
    "How long the oldest webhook delivery that may be sent now has been due",
)


def _webhook_gauges(
    webhooks: Mapping[str, Any],
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    return {
        "processgpt_webhook_deliveries_pending": {(): float(webhooks.get("pending") or 0)},
        "processgpt_webhook_deliveries_due": {(): float(webhooks.get("due") or 0)},
        "processgpt_webhook_oldest_due_seconds": {
            (): float(webhooks.get("oldest_due_seconds") or 0)
        },
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class SnapshotLoop:
    """Refreshes the process's deployment gauges every ``interval`` seconds until cancelled."""

    def __init__(self, repository: MetricsRepository, interval: float) -> None:
        self._repository = repository
        self._interval = interval
        self.refreshes = 0
        """Snapshots this process computed (the others it only read)."""

    async def tick(self) -> QueueSnapshot | None:
        """Read (or recompute, when due) the snapshot and show it; None: none yet. A database
        error is logged and leaves the gauges as they were (their age shows it)."""
        try:
            snapshot = await self._repository.snapshot(self._interval)
        except Exception as exc:  # noqa: BLE001 - the next interval tries again
            log_db_error("metrics snapshot", exc)
            return None
        if snapshot is None:
            return None
        if snapshot.refreshed:
            self.refreshes += 1
        shown = queue_snapshot(snapshot)
        set_queue_snapshot(shown)
        return shown

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self._interval)


@contextlib.asynccontextmanager
async def snapshot_refresh(
    repository: MetricsRepository, interval: float
) -> AsyncIterator[SnapshotLoop]:
    """Run a :class:`SnapshotLoop` while the block runs; the gauges are cleared after it."""
    loop = SnapshotLoop(repository, interval)
    try:
        async with background(loop.run(), name="metrics-snapshot"):
            yield loop
    finally:
        set_queue_snapshot(None)

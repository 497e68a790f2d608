"""Leases: a worker's heartbeat, its presence, and the recovery of expired leases.

Every running attempt holds a lease (``todolist.lease_until``). The heartbeat renews all of a
worker's leases in one statement every third of the lease; an attempt whose lease could not
be renewed (its fence moved: the task was cancelled, or another worker took it over) is
stopped. The same loop writes the worker's presence (its ``workers`` row and
``orchestrators.last_seen_at``) every :data:`PRESENCE_INTERVAL` seconds, so that operators
and the API can tell which workers live and which agents some worker serves. Independently,
every worker puts back tasks whose lease expired, whoever held them (a crashed or frozen
worker).

Database errors never stop these loops: they are logged and the work is tried again at the
next beat or interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from processgpt.db.retry import log_db_error
from processgpt.db.worker_queries import WorkerQueries
from processgpt.domain.task import TaskStatus
from processgpt.metrics import TASKS
from processgpt.runtime.background import background

log = logging.getLogger(__name__)

PRESENCE_INTERVAL = 10.0
"""Seconds between two presence updates of a worker at most (a worker counts as alive while
it was seen within a few of them)."""

Lease = tuple[uuid.UUID, int]
"""An attempt's lease: its task and fence."""


class LeaseKeeper:
    """Renews the leases ``held()`` returns and calls ``on_lost(task_id, fence)`` for each one
    that no longer holds; awaits ``presence()`` every ``presence_interval``; recovers expired
    leases every ``recovery_interval`` seconds. Runs while :meth:`running`'s block does."""

    def __init__(
        self,
        queries: WorkerQueries,
        presence: Callable[[], Awaitable[None]],
        *,
        lease_seconds: float,
        recovery_interval: float,
        presence_interval: float = PRESENCE_INTERVAL,
        held: Callable[[], list[Lease]],
        on_lost: Callable[[uuid.UUID, int], None],
    ) -> None:
        self._queries = queries
        self._presence = presence
        self._lease_seconds = lease_seconds
        self._recovery_interval = recovery_interval
        self._presence_interval = presence_interval
        self._held = held
        self._on_lost = on_lost
        self._check_now = asyncio.Event()

    def check_now(self) -> None:
        """Renew (and so re-check) every lease now rather than at the next beat."""
        self._check_now.set()

    @contextlib.asynccontextmanager
    async def running(
        self, on_crash: Callable[[BaseException], None] | None = None
    ) -> AsyncIterator[None]:
        """Heartbeats and lease recovery run while the block does (``on_crash``: see
        :func:`~processgpt.runtime.background.background`)."""
        async with (
            background(self._heartbeat_loop(), name="heartbeat", on_crash=on_crash),
            background(self._recovery_loop(), name="lease-recovery", on_crash=on_crash),
        ):
            yield

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._lease_seconds / 3
        renew_at = loop.time() + interval
        seen_at = loop.time() + self._presence_interval  # registering wrote the first
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(min(renew_at, seen_at)):
                    await self._check_now.wait()
            now = loop.time()
            if self._check_now.is_set() or now >= renew_at:
                self._check_now.clear()
                renew_at = now + interval
                await self._renew()
            if now >= seen_at:
                seen_at = now + self._presence_interval
                await self._mark_seen()

    async def _renew(self) -> None:
        held = self._held()
        if not held:
            return
        try:
            kept = await self._queries.extend_leases(held, self._lease_seconds)
        except Exception as exc:  # noqa: BLE001 - retried at the next beat
            log_db_error("lease renewal", exc)
            return
        for task_id, fence in held:
            if task_id not in kept:
                self._on_lost(task_id, fence)

    async def _mark_seen(self) -> None:
        try:
            await self._presence()
        except Exception as exc:  # noqa: BLE001 - retried at the next beat
            log_db_error("presence update", exc)

    async def _recovery_loop(self) -> None:
        while True:
            await asyncio.sleep(self._recovery_interval)
            try:
                recovered = await self._queries.recover_expired()
            except Exception as exc:  # noqa: BLE001 - retried at the next interval
                log_db_error("lease recovery", exc)
                continue
            for task_id, agent, status in recovered:
                TASKS.recovered(agent, failed=status is TaskStatus.FAILED)
                log.warning("recovered task with expired lease task=%s now=%s", task_id, status)

"""The worker's timer loop: fires due process timers (intermediate timers, boundary timers,
SLA escalations) on time, with no polling faster than needed.

The loop sleeps until the next timer is due (the database's clock), or until a timer is armed
(NOTIFY ``processgpt_timers``, sent by migration 0017's trigger, which may bring the next due
time forward), or at most ``max_sleep`` seconds (a notification lost while the listener
reconnected). Any number of workers may run it: a timer's row is taken by exactly one firing
transaction (see :meth:`~processgpt.db.process_instances.ProcessInstances.fire_due_timers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from processgpt.db.retry import log_db_error

log = logging.getLogger(__name__)


class TimerLoop:
    """``fire(limit)`` fires due timers and says how many; ``next_due()`` the seconds until the
    next one (None: none armed). Run :meth:`run` as a background task; cancel it to stop."""

    def __init__(
        self,
        fire: Callable[[int], Awaitable[int]],
        next_due: Callable[[], Awaitable[float | None]],
        *,
        batch: int = 100,
        max_sleep: float = 30.0,
        busy_sleep: float = 0.05,
    ) -> None:
        self._fire = fire
        self._next_due = next_due
        self._batch = batch
        self._max_sleep = max_sleep
        self._busy_sleep = busy_sleep
        self._wakeup = asyncio.Event()
        self.fired = 0

    def wake(self) -> None:
        """A timer was armed (or notifications may have been lost): look again now."""
        self._wakeup.set()

    async def run(self) -> None:
        failures = 0
        while True:
            self._wakeup.clear()  # before reading: a timer armed from here on wakes us
            try:
                fired = await self._fire(self._batch)
                self.fired += fired
                if fired >= self._batch:
                    continue
                delay = await self._next_due()
            except Exception as exc:  # noqa: BLE001 - the timers stay due: tried again
                failures += 1
                log_db_error("firing process timers", exc, first=failures == 1)
                delay = min(self._max_sleep, 0.1 * 2 ** min(failures, 8))
            else:
                failures = 0
                if delay is not None and delay <= 0:
                    # Due but not fired: another worker fires it right now.
                    delay = self._busy_sleep
            timeout = self._max_sleep if delay is None else min(delay + 0.001, self._max_sleep)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()

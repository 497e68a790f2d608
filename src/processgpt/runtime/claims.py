"""The claim loop: when a worker claims tasks, and how many at once.

A claim follows a wake-up (a notification that work arrived, the fallback poll, a listener
reconnect) or a claim that came back full. Claims are sized by :func:`claim_size`: while a
backlog lasts two claims overlap, so the tasks of one run while the next one's round trip is
under way, and the worker never holds more than its concurrency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from processgpt.db.retry import log_db_error
from processgpt.db.worker_queries import ClaimedTask, WorkerQueries
from processgpt.metrics import CLAIM_DURATION, CLAIM_SIZE

CLAIMS_IN_FLIGHT = 2
"""Claims one worker may have under way at once while a backlog lasts."""


def claim_size(*, concurrency: int, held: int, in_flight: int, may_have_work: bool) -> int:
    """How many tasks a worker claims now (0: none), holding ``held`` slots (running tasks and
    claims under way) with ``in_flight`` claims under way.

    A claim follows a wake-up (a notification, the poll) or a claim that came back full
    (``may_have_work``). It asks for at most a ``CLAIMS_IN_FLIGHT``-th of the concurrency,
    and while one is under way the next waits until that many slots are free, so that during
    a backlog claims stay large and the tasks of one run while the next one's round trip is
    under way. With nothing under way it claims whatever is free.
    """
    free = concurrency - held
    if free <= 0 or in_flight >= CLAIMS_IN_FLIGHT or not may_have_work:
        return 0
    chunk = -(-concurrency // CLAIMS_IN_FLIGHT)
    if in_flight and free < chunk:
        return 0
    return min(free, chunk)


class ClaimLoop:
    """Claims tasks for one worker until :meth:`stop`.

    ``running()`` says how many slots the worker's runs hold; ``start(tasks)`` is called with
    the tasks of every claim that succeeded (possibly none), and must make them runs at once
    (they hold slots from then on). The owner calls :meth:`wake` when there may be new work
    and :meth:`poke` when a slot was freed.
    """

    def __init__(
        self,
        queries: WorkerQueries,
        orchs: list[str],
        *,
        concurrency: int,
        consumer: str,
        lease_seconds: float,
        poll_interval: float,
        running: Callable[[], int],
        start: Callable[[list[ClaimedTask]], None],
        max_running: Mapping[str, int] | None = None,
    ) -> None:
        self._queries = queries
        self._orchs = orchs
        self._concurrency = concurrency
        self._consumer = consumer
        self._lease_seconds = lease_seconds
        self._poll_interval = poll_interval
        # limits of the orchestrators this worker claims for (the others' do not matter here)
        self._max_running = {
            name: most for name, most in (max_running or {}).items() if name in orchs
        }
        self._running = running
        self._start = start
        self._wake = asyncio.Event()  # there may be new work (a notification, the poll)
        self._poke = asyncio.Event()  # something the loop decides on changed
        self._stopping = False
        self._reserved = 0  # slots held by claims in flight
        self._backlog = False  # the last claim came back full
        self._poll_at = 0.0  # the loop looks for work by then even if not woken

    def wake(self) -> None:
        """There may be new work: claim soon."""
        self._wake.set()
        self._poke.set()

    def poke(self) -> None:
        """Something the loop decides on changed (a slot was freed)."""
        self._poke.set()

    def stop(self) -> None:
        """Send no more claims; :meth:`run` returns once those under way are done."""
        self._stopping = True
        self._poke.set()

    async def run(self) -> None:
        """Send claims as :func:`claim_size` says until :meth:`stop`. A claim's slots are
        reserved from the moment it is sent; a claim under way when the loop stops still
        starts its tasks (the worker's shutdown finishes or hands them back)."""
        loop = asyncio.get_running_loop()
        poll_interval = self._poll_interval
        claims: set[asyncio.Task[None]] = set()
        self._wake.set()  # look for work at once
        try:
            while not self._stopping:
                self._poke.clear()
                for claim in [c for c in claims if c.done()]:
                    claims.discard(claim)
                    claim.result()  # a bug in handling claimed rows stops the worker loudly
                size = self._next_claim_size(len(claims))
                if size:
                    self._wake.clear()
                    self._reserved += size
                    if self._poll_at <= loop.time():  # a sooner deadline (a delayed task) stays
                        self._poll_at = loop.time() + poll_interval
                    claims.add(asyncio.create_task(self._claim(size), name="claim"))
                    continue
                try:
                    async with asyncio.timeout_at(self._poll_at):
                        await self._poke.wait()
                except TimeoutError:  # the polling fallback for missed notifications
                    self._wake.set()
                    self._poll_at = loop.time() + poll_interval
        except asyncio.CancelledError:
            for claim in claims:
                claim.cancel()
            raise
        finally:
            if claims:
                await asyncio.wait(claims)
                for claim in claims:
                    if not claim.cancelled():
                        claim.result()

    def _next_claim_size(self, in_flight: int) -> int:
        return claim_size(
            concurrency=self._concurrency,
            held=self._running() + self._reserved,
            in_flight=in_flight,
            may_have_work=self._wake.is_set() or self._backlog,
        )

    async def _claim(self, limit: int) -> None:
        try:
            tasks = await self._claim_tasks(limit)
        finally:
            self._reserved -= limit
            self._poke.set()
        if tasks is None:  # the claim failed (logged); the next wake-up or poll tries again
            self._backlog = False
            return
        self._start(tasks)
        self._backlog = len(tasks) == limit
        if not tasks:  # poll again when the next delayed task is due, if that is sooner
            loop = asyncio.get_running_loop()
            seconds = await self._until_next_run_at(self._poll_interval)
            self._poll_at = min(self._poll_at, loop.time() + seconds)
            self._poke.set()

    async def _claim_tasks(self, limit: int) -> list[ClaimedTask] | None:
        started = time.perf_counter()
        try:
            tasks = await self._queries.claim(
                self._orchs, limit, self._consumer, self._lease_seconds, self._max_running
            )
        except Exception as exc:  # noqa: BLE001 - retried at the next wake-up or poll
            log_db_error("claim", exc)
            await asyncio.sleep(min(1.0, self._poll_interval))
            return None
        CLAIM_DURATION.observe(time.perf_counter() - started)
        CLAIM_SIZE.observe(len(tasks))
        return tasks

    async def _until_next_run_at(self, default: float) -> float:
        try:
            seconds = await self._queries.seconds_until_next_run(self._orchs)
        except Exception as exc:  # noqa: BLE001 - the poll interval is the fallback
            log_db_error("next run time", exc)
            return default
        return default if seconds is None else max(0.0, min(default, seconds))

"""The worker's webhook delivery loop: sends the outbox's due deliveries through a
:class:`Sender`, at least once each.

A round claims up to the free sending slots (:meth:`~processgpt.db.webhooks.
WebhookRepository.claim`: any number of workers share the outbox, each delivery attempt taken
by one), fairly: an endpoint has at most ``per_endpoint`` attempts in flight and a tenant
``per_tenant`` across the deployment, and tenants take turns, so one tenant's slow or failing
endpoint (timeouts, a backlog of thousands) holds a bounded share of the senders and never
delays another tenant's deliveries behind its own. It starts a send per claimed delivery and records
each attempt's end (:func:`~processgpt.domain.webhooks.decide`: delivered, retried after the
schedule's next delay or the answer's ``Retry-After``, dead, or gone on 410). A claim pushes
the delivery ``lease_seconds`` out, so a worker killed mid-delivery leaves it due again: it is
sent again with the same ``webhook-id`` (receivers deduplicate on it).

Between rounds the loop sleeps until the next delivery is due (the database's clock), until a
delivery is written (NOTIFY ``processgpt_webhooks`` from migration 0024's triggers) or a send
ends, and at most ``max_sleep`` seconds: no fast polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Protocol

from processgpt.db.retry import log_db_error, retry_transient
from processgpt.db.webhooks import ClaimedDelivery, WebhookRepository
from processgpt.domain.webhooks import AttemptResult, Verdict, decide
from processgpt.metrics import WEBHOOK_ATTEMPT_DURATION, WEBHOOK_ATTEMPTS

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Sends one attempt of a delivery and says how it went. It must not raise for what the
    receiver or the network did (that is an :class:`AttemptResult` with an ``error``), must
    bound its own time, and must never put the secret or the body in an error or a log line.
    HTTP with Standard Webhooks signatures is :class:`~processgpt.tools.webhook_http.
    HttpSender`; a push service (FCM) could be another."""

    async def send(self, delivery: ClaimedDelivery) -> AttemptResult: ...

    async def aclose(self) -> None: ...


class DeliveryLoop:
    """Runs until cancelled (see the module). Sends in flight when it is cancelled are
    cancelled too; their deliveries are sent again once their lease ends."""

    def __init__(
        self,
        repo: WebhookRepository,
        sender: Sender,
        schedule: tuple[float, ...],
        *,
        concurrency: int = 16,
        per_endpoint: int = 4,
        per_tenant: int = 8,
        lease_seconds: float = 60.0,
        max_sleep: float = 30.0,
    ) -> None:
        self._repo = repo
        self._sender = sender
        self._schedule = schedule
        self._concurrency = concurrency
        self._per_endpoint = per_endpoint
        self._per_tenant = per_tenant
        self._lease = lease_seconds
        self._max_sleep = max_sleep
        self._wakeup = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self.stats: dict[str, int] = {v.value: 0 for v in Verdict}
        self.stats["stale"] = 0

    def wake(self) -> None:
        """Deliveries were written (or notifications may have been lost): look now."""
        self._wakeup.set()

    async def run(self) -> None:
        failures = 0
        try:
            while True:
                self._wakeup.clear()  # before reading: a delivery written from here wakes us
                free = self._concurrency - len(self._sending)
                delay: float | None
                try:
                    if free > 0:
                        claimed = await self._repo.claim(
                            free,
                            self._lease,
                            per_endpoint=self._per_endpoint,
                            per_tenant=self._per_tenant,
                        )
                        for delivery in claimed:
                            task = asyncio.create_task(
                                self._deliver(delivery), name=f"webhook:{delivery.id}"
                            )
                            self._sending.add(task)
                            task.add_done_callback(self._sent)
                    if len(self._sending) >= self._concurrency:
                        delay = None  # a slot frees up: a send ending wakes us
                    else:
                        delay = await self._repo.seconds_until_next(
                            self._per_endpoint, self._per_tenant
                        )
                except Exception as exc:  # noqa: BLE001 - deliveries stay due: tried again
                    failures += 1
                    log_db_error("claiming webhook deliveries", exc, first=failures == 1)
                    delay = min(self._max_sleep, 0.1 * 2 ** min(failures, 8))
                else:
                    failures = 0
                    if delay is not None and delay <= 0:
                        delay = 0.05  # due but not claimed: another worker sends it now
                timeout = self._max_sleep if delay is None else min(delay, self._max_sleep)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout + 0.001):
                        await self._wakeup.wait()
        finally:
            for task in list(self._sending):
                task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)
            await self._sender.aclose()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._wakeup.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery failed unexpectedly", exc_info=task.exception())

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        started = time.monotonic()
        try:
            result = await self._sender.send(delivery)
        except Exception as exc:
            log.error(
                "webhook sender raised delivery=%s error=%s",
                delivery.id,
                type(exc).__name__,
                exc_info=exc,
            )
            result = AttemptResult(error=f"sender error: {type(exc).__name__}")
        if not result.duration_ms:
            result = AttemptResult(
                result.status_code,
                result.error,
                result.retry_after,
                int((time.monotonic() - started) * 1000),
            )
        decision = decide(result, delivery.attempts, self._schedule)
        at = datetime.now(UTC).isoformat()
        recorded = await retry_transient(
            lambda: self._repo.record(delivery, result, decision, at),
            what="recording a webhook delivery",
        )
        outcome = decision.verdict.value if recorded else "stale"
        self.stats[outcome] += 1
        WEBHOOK_ATTEMPTS.labels(outcome).inc()
        WEBHOOK_ATTEMPT_DURATION.observe(result.duration_ms / 1000)
        log.log(
            logging.INFO if decision.verdict is not Verdict.DELIVERED else logging.DEBUG,
            "webhook attempt delivery=%s endpoint=%s tenant=%s event=%s attempt=%d result=%s "
            "verdict=%s next_in=%s",
            delivery.id,
            delivery.endpoint_id,
            delivery.tenant_id,
            delivery.event_type,
            delivery.attempts,
            result.summary,
            decision.verdict.value if recorded else "stale",
            "-" if decision.delay is None else f"{decision.delay:.1f}s",
        )

"""The HTTP webhook sender: one POST per attempt, signed per Standard Webhooks, through the
tenant-URL guard.

Every connection goes through :func:`~processgpt.tools.netguard.guarded_http_client`: the
host is resolved and each address checked at connect time (a name that resolves to an
internal address, or starts to after the endpoint was made, is refused), environment proxies
are ignored and redirects are not followed (a 3xx is a failed attempt). Each attempt is
bounded by ``timeout`` seconds in total, and at most ``max_response_bytes`` of an answer are
read (the body is not kept: only the status counts).
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx2

from processgpt.db.webhooks import ClaimedDelivery
from processgpt.domain.webhooks import AttemptResult, retry_after_seconds, signed_headers
from processgpt.tools.netguard import REFUSED_INTERNAL, NetworkPolicy, guarded_http_client

log = logging.getLogger(__name__)

USER_AGENT = "processgpt-webhooks/1"


class HttpSender:
    """See the module. Safe to share between concurrent sends; :meth:`aclose` when done."""

    def __init__(
        self, policy: NetworkPolicy, *, timeout: float = 10.0, max_response_bytes: int = 65536
    ) -> None:
        self._timeout = timeout
        self._client = guarded_http_client(
            policy,
            headers={"user-agent": USER_AGENT, "content-type": "application/json"},
            timeout=httpx2.Timeout(timeout),
            max_message_bytes=max_response_bytes,
        )

    async def send(self, delivery: ClaimedDelivery) -> AttemptResult:
        body = delivery.body()
        started = time.monotonic()
        headers = signed_headers(
            delivery.secret,
            delivery.webhook_id,
            int(time.time()),
            body,
            delivery.previous_secret,
        )
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(delivery.url, content=body, headers=headers)
                await response.aclose()
        except TimeoutError:
            return AttemptResult(error="timed out", duration_ms=_ms(started))
        except httpx2.HTTPError as exc:
            return AttemptResult(error=_describe(exc), duration_ms=_ms(started))
        return AttemptResult(
            status_code=response.status_code,
            retry_after=retry_after_seconds(response.headers.get("retry-after"), time.time()),
            duration_ms=_ms(started),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _describe(exc: httpx2.HTTPError) -> str:
    """A short, tenant-safe description: the kind of failure, never an address the host
    resolved to (the policy's refusal says only :data:`REFUSED_INTERNAL`)."""
    text = str(exc)
    if REFUSED_INTERNAL in text:
        return REFUSED_INTERNAL
    if isinstance(exc, httpx2.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx2.ConnectError):
        return "could not connect"
    return f"request failed ({type(exc).__name__})"

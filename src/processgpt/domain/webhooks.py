"""Webhooks: the event types, Standard Webhooks signatures, and how an attempt ends.

Pure: no I/O. The outbox rows are written by the database (migration 0024's triggers), sent
by a :class:`~processgpt.runtime.webhook_delivery.DeliveryLoop`, and what happens after each
attempt is :func:`decide` (unit-tested without a network or a database).

Signatures follow the Standard Webhooks spec (https://www.standardwebhooks.com): headers
``webhook-id`` (the delivery's id, the same on every retry, so receivers deduplicate),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` keyed with the base64-decoded part
of the ``whsec_`` secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from processgpt.domain.errors import InvalidInput

EVENT_TYPES: tuple[str, ...] = (
    "task.completed",
    "task.failed",
    "task.input_required",
    "process.completed",
    "process.incident",
    "human_task.assigned",
)
"""Every event type an endpoint may ask for (none asked: all of them)."""

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not one
SECRET_BYTES = 32
MAX_RETRY_AFTER = 86400.0
"""A ``Retry-After`` longer than a day is read as a day."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def mask_secret(secret: str) -> str:
    """What responses show of a secret after it was created: the prefix and its last 4."""
    return f"{SECRET_PREFIX}…{secret[-4:]}"


def check_event_types(types: Iterable[str]) -> list[str]:
    """The types, sorted and without repeats; :class:`InvalidInput` naming an unknown one."""
    wanted = sorted(set(types))
    for name in wanted:
        if name not in EVENT_TYPES:
            raise InvalidInput(
                f"unknown event type {name[:60]!r}; types: {', '.join(EVENT_TYPES)}",
                field="event_types",
            )
    return wanted


def message_id(delivery_id: object) -> str:
    """The ``webhook-id`` of a delivery (stable across its attempts)."""
    return f"msg_{delivery_id}"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (``v1,<base64>``) for one attempt."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(
    secret: str, msg_id: str, timestamp: int, body: bytes, previous: str | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt. With a ``previous`` secret (a
    rotation's overlap) the signature header carries both signatures, space-separated, the
    current one first: a receiver that knows either secret verifies the attempt."""
    signatures = [sign(secret, msg_id, timestamp, body)]
    if previous is not None:
        signatures.append(sign(previous, msg_id, timestamp, body))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


def parse_schedule(text: str) -> tuple[float, ...]:
    """``"5,300,1800"``: the seconds to wait before each retry (attempt 2, 3, …); the
    delivery is dead once they are used up. :class:`ValueError` on anything else."""
    problem = "the retry schedule is 1 to 50 comma-separated non-negative seconds"
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(problem) from None
    if not delays or len(delays) > 50 or not all(0 <= d < float("inf") for d in delays):
        raise ValueError(problem)
    return delays


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt got: an HTTP status, or an error before one (``error``: a short,
    secret-free description), and a ``Retry-After`` in seconds when the answer had one."""

    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    duration_ms: int = 0

    @property
    def summary(self) -> str:
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        return self.error or "no answer"


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    GONE = "gone"
    """410: the receiver says the endpoint is gone: the endpoint is disabled."""


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    delay: float | None = None
    """Seconds until the next attempt (RETRY only)."""


def decide(result: AttemptResult, attempts: int, schedule: Sequence[float]) -> Decision:
    """How a delivery goes on after its ``attempts``-th attempt got ``result``: a 2xx is
    delivered; 410 is gone; anything else (network errors, timeouts, 429, 5xx, other
    answers) is retried after the schedule's next delay, or later when ``Retry-After`` says
    so, until the schedule is used up."""
    code = result.status_code
    if code is not None and 200 <= code < 300:
        return Decision(Verdict.DELIVERED)
    if code == 410:
        return Decision(Verdict.GONE)
    if attempts > len(schedule):
        return Decision(Verdict.DEAD)
    delay = schedule[attempts - 1]
    if result.retry_after is not None:
        delay = max(delay, min(result.retry_after, MAX_RETRY_AFTER))
    return Decision(Verdict.RETRY, delay)


def retry_after_seconds(value: str | None, now_epoch: float) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime  # noqa: PLC0415 - rare

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_epoch)

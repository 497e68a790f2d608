"""domain/webhooks.py: signatures the reference implementation accepts, how an attempt ends,
the retry schedule and Retry-After."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from processgpt.domain.errors import InvalidInput
from processgpt.domain.webhooks import (
    AttemptResult,
    Verdict,
    check_event_types,
    decide,
    mask_secret,
    new_secret,
    parse_schedule,
    retry_after_seconds,
    sign,
    signed_headers,
)

SCHEDULE = (5.0, 300.0, 1800.0)


def test_signatures_verify_with_the_reference_implementation() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = b'{"type":"task.completed","data":{"task_id":"t"}}'
    now = int(datetime.now(UTC).timestamp())
    headers = signed_headers(secret, "msg_1", now, body)
    assert Webhook(secret).verify(body, headers) == {
        "type": "task.completed",
        "data": {"task_id": "t"},
    }
    # The reference signs the same bytes the same way.
    assert headers["webhook-signature"] == Webhook(secret).sign(
        "msg_1", datetime.fromtimestamp(now, UTC), body.decode()
    )
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(secret).verify(body + b" ", headers)
    assert mask_secret(secret).endswith(secret[-4:]) and secret not in mask_secret(secret)


def test_an_overlap_signs_with_both_secrets_and_either_verifies() -> None:
    new, old, other = new_secret(), new_secret(), new_secret()
    body = b'{"type":"task.failed"}'
    now = int(datetime.now(UTC).timestamp())
    headers = signed_headers(new, "msg_2", now, body, previous=old)
    first, second = headers["webhook-signature"].split(" ")
    assert first == sign(new, "msg_2", now, body) and second == sign(old, "msg_2", now, body)
    assert Webhook(new).verify(body, headers) == {"type": "task.failed"}
    assert Webhook(old).verify(body, headers) == {"type": "task.failed"}
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(other).verify(body, headers)


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_2xx_is_delivered(code: int) -> None:
    assert decide(AttemptResult(code), 1, SCHEDULE).verdict is Verdict.DELIVERED


def test_410_is_gone_at_any_attempt() -> None:
    assert decide(AttemptResult(410), 1, SCHEDULE).verdict is Verdict.GONE
    assert decide(AttemptResult(410), 4, SCHEDULE).verdict is Verdict.GONE


@pytest.mark.parametrize(
    "result",
    [AttemptResult(500), AttemptResult(503), AttemptResult(429), AttemptResult(404),
     AttemptResult(302), AttemptResult(error="timed out")],
)  # fmt: skip
def test_everything_else_is_retried_on_the_schedule_then_dead(result: AttemptResult) -> None:
    delays = [decide(result, n, SCHEDULE).delay for n in (1, 2, 3)]
    assert delays == list(SCHEDULE)
    assert decide(result, 4, SCHEDULE).verdict is Verdict.DEAD


def test_retry_after_is_honoured_when_longer_and_capped() -> None:
    assert decide(AttemptResult(429, retry_after=60), 1, SCHEDULE).delay == 60
    assert decide(AttemptResult(503, retry_after=1), 1, SCHEDULE).delay == 5
    assert decide(AttemptResult(503, retry_after=10**9), 1, SCHEDULE).delay == 86400
    assert retry_after_seconds("120", 0) == 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10
    assert retry_after_seconds("soon", 0) is None and retry_after_seconds(None, 0) is None


def test_schedules_and_event_types_are_checked() -> None:
    assert parse_schedule("0.2, 1") == (0.2, 1.0)
    for bad in ("", "a", "-1", "nan"):
        with pytest.raises(ValueError, match="retry schedule"):
            parse_schedule(bad)
    assert check_event_types(["task.failed", "task.completed", "task.failed"]) == [
        "task.completed",
        "task.failed",
    ]
    with pytest.raises(InvalidInput):
        check_event_types(["task.exploded"])

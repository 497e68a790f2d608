"""The one backoff loop: what it retries, what it gives back, how long it waits."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import pytest

from processgpt.db.retry import retry_transient


class Flaky:
    """Fails with ``errors`` in turn, then returns ``"ok"``; records when it was called."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "processgpt.db.retry"]


async def test_failures_are_retried_with_a_doubling_capped_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    op = Flaky(ConnectionResetError(), OSError("gone"), ConnectionResetError(), OSError())
    with caplog.at_level(logging.WARNING, logger="processgpt.db.retry"):
        assert await retry_transient(op, what="a test", first_delay=0.02, cap=0.04) == "ok"
    gaps = [b - a for a, b in zip(op.calls, op.calls[1:], strict=False)]
    assert len(gaps) == 4
    for gap, delay in zip(gaps, [0.02, 0.04, 0.04, 0.04], strict=True):  # doubled, then capped
        assert gap >= delay * 0.9, gaps
    records = _records(caplog)
    assert len(records) == 4
    assert all(r.getMessage().startswith("a test failed, will retry in ") for r in records)
    assert all(r.levelno == logging.WARNING for r in records)  # transient: warnings


async def test_a_failure_that_is_not_transient_is_retried_too_and_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    op = Flaky(RuntimeError("a bug"), RuntimeError("a bug"))
    with caplog.at_level(logging.WARNING, logger="processgpt.db.retry"):
        assert await retry_transient(op, what="a test", first_delay=0.001) == "ok"
    records = _records(caplog)
    assert [r.levelno for r in records] == [logging.ERROR, logging.ERROR]
    assert records[0].exc_info is not None  # the traceback, once
    assert not records[1].exc_info


@pytest.mark.parametrize(
    "error",
    [ValueError("bad value"), asyncpg.UniqueViolationError("duplicate"), TypeError("no")],
)
async def test_a_data_error_is_given_back_at_once(error: Exception) -> None:
    op = Flaky(error)
    with pytest.raises(type(error)):
        await retry_transient(op, what="a test", first_delay=0.001)
    assert len(op.calls) == 1


async def test_cancelling_the_caller_stops_it() -> None:
    op = Flaky(*[ConnectionResetError() for _ in range(1000)])
    task = asyncio.create_task(retry_transient(op, what="a test", first_delay=0.01))
    while len(op.calls) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

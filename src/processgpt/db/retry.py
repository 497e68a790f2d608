"""Trying a database operation again until it succeeds: the one backoff loop of the package.

Whatever runs here must not be lost (a batch of events, a task's failure, a registration the
process cannot start without), so it is tried again after any failure that another try may
cure, with a delay that doubles up to a cap; only a failure about the values themselves
(:func:`~processgpt.db.database.is_data_error`) is given back to the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from processgpt.db.database import is_data_error, is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY = 0.05
"""Seconds before the second try."""


async def retry_transient(
    op: Callable[[], Awaitable[T]],
    *,
    what: str,
    cap: float = 2.0,
    first_delay: float = FIRST_DELAY,
) -> T:
    """Await ``op()`` until it returns, and return its result.

    A failure the same statement would meet again (:func:`is_data_error`: invalid values,
    constraint violations) is raised at once. Any other failure is logged under ``what`` (see
    :func:`log_db_error`) and ``op`` is called again after a delay that starts at
    ``first_delay`` and doubles up to ``cap`` seconds. It never gives up: to stop it, cancel
    the caller (``asyncio.CancelledError`` is never caught).
    """
    delay = first_delay
    failures = 0
    while True:
        try:
            return await op()
        except Exception as exc:
            if is_data_error(exc):
                raise
            failures += 1
            log_db_error(what, exc, retry_in=delay, first=failures == 1)
        await asyncio.sleep(delay)
        delay = min(delay * 2, cap)


def log_db_error(
    what: str, exc: BaseException, *, retry_in: float | None = None, first: bool = True
) -> None:
    """Log a failed database operation that will be tried again: a warning naming the error's
    type when the failure is transient (:func:`is_transient`: a lost connection, a server
    restarting), else an error, with its traceback the ``first`` time (a bug such as a missing
    table). Data errors, whose messages may quote the values, are never logged here."""
    when = "" if retry_in is None else f" in {retry_in:.2f}s"
    if is_transient(exc):
        log.warning("%s failed, will retry%s error=%s", what, when, type(exc).__name__)
    else:
        log.error(
            "%s failed, will retry%s error=%s",
            what,
            when,
            type(exc).__name__,
            exc_info=exc if first else None,
        )

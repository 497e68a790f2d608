"""One LISTEN connection per process, shared by everything that waits for notifications.

Postgres forgets notifications sent while nobody listens, so after every (re)connect the
listener calls each ``on_reconnect`` callback: subscribers re-read what they may have missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from processgpt.db.database import TRANSIENT_ERRORS, is_transient, redact_dsn

log = logging.getLogger(__name__)

Handler = Callable[[str], None]


class Listener:
    """Keeps one connection LISTENing on a set of channels and reconnects when it drops.

    Handlers run on the event loop and must not block. Run :meth:`run` as a task; cancel it to
    stop.
    """

    def __init__(
        self, dsn: str, *, reconnect_delay: float = 0.25, max_reconnect_delay: float = 2.0
    ) -> None:
        self._dsn = dsn
        self._handlers: dict[str, list[Handler]] = {}
        self._on_reconnect: list[Callable[[], None]] = []
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self.connected = asyncio.Event()

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Call ``handler(payload)`` for every notification on ``channel``. Register before
        :meth:`run` starts."""
        self._handlers.setdefault(channel, []).append(handler)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._on_reconnect.append(callback)

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload)
            except Exception:
                log.exception("notification handler failed channel=%s", channel)

    async def run(self) -> None:
        """Listen until cancelled. While the database cannot be reached, attempts back off
        (up to ``max_reconnect_delay`` apart) and only the first failure of an outage is
        logged above DEBUG, with a line when the connection is back."""
        first = True
        failures = 0
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
            except TRANSIENT_ERRORS as exc:
                failures += 1
                log.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "listener cannot connect, retrying dsn=%s error=%s attempt=%d",
                    redact_dsn(self._dsn),
                    type(exc).__name__,
                    failures,
                )
                delay = self._reconnect_delay * 2 ** min(failures - 1, 16)
                await asyncio.sleep(min(delay, self._max_reconnect_delay))
                continue
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in self._handlers:
                    await conn.add_listener(channel, self._dispatch)
                self.connected.set()
                if not first:
                    log.info("listener reconnected after_attempts=%d", failures)
                failures = 0
                for callback in self._on_reconnect:
                    callback()
                first = False
                # Termination is not always reported while idle; a cheap periodic query notices.
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), timeout=5.0)
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=5)
            except Exception as exc:  # never stop listening: log and reconnect
                if is_transient(exc):
                    log.warning("listener connection lost error=%s", type(exc).__name__)
                else:
                    log.error(
                        "listener failed, reconnecting error=%s", type(exc).__name__, exc_info=exc
                    )
            finally:
                self.connected.clear()
                if not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(self._reconnect_delay)

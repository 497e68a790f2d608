"""Connection pool, codecs and the translation of driver errors.

Every statement run through :class:`Database` (its methods and :meth:`Database.transaction`)
raises our errors, not the driver's, for the two failures every caller handles alike: the
database cannot be reached (:class:`~processgpt.domain.errors.DatabaseUnavailable`, which
:func:`is_transient` recognises) and text Postgres cannot store, such as NUL
(:class:`~processgpt.domain.errors.InvalidInput`). Repositories catch the driver's integrity
errors themselves, where they know what a violated constraint means."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from processgpt.domain.errors import DatabaseUnavailable, InvalidInput
from processgpt.domain.events import decode_json, encode_json

log = logging.getLogger(__name__)


class _WithoutTraceback(logging.Filter):
    """Turns a record's traceback into ``error=<type>`` on its one line. The pool logs a
    traceback each time it fails to reconnect while the database is down; an outage should
    cost a line per attempt, not a screenful."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} error={type(record.exc_info[1]).__name__}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("asyncpg.pool").addFilter(_WithoutTraceback())

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
)
"""Errors after which the same statement may succeed if tried again (connection lost,
server restarting, serialization conflicts)."""


_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58")
"""Connection exceptions, insufficient resources (disk full, out of memory, too many
connections), operator intervention (shutdown, query cancelled, failover) and system errors."""
_TRANSIENT_SQLSTATES = frozenset({"25006", "40001", "40P01", "55P03", "55006"})
"""Read-only transaction (a failover in progress), serialization failure, deadlock, lock not
available, object in use."""


def is_data_error(error: BaseException) -> bool:
    """Whether the database (or the driver, while encoding) refused the values themselves:
    the same statement will fail again."""
    if isinstance(error, asyncpg.exceptions.DataError | ValueError | TypeError | InvalidInput):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    return (
        isinstance(error, asyncpg.PostgresError)
        and isinstance(sqlstate, str)
        and sqlstate[:2] in ("22", "23", "54")
    )


def is_transient(error: BaseException) -> bool:
    """Whether retrying the failed operation may succeed: lost connections, a server that is
    restarting or failing over, resource exhaustion, lock conflicts. Data errors (invalid
    values, constraint violations: SQLSTATE classes 22, 23, 54) are not."""
    if is_data_error(error):
        return False
    if isinstance(
        error, (*TRANSIENT_ERRORS, asyncpg.exceptions.InternalClientError, DatabaseUnavailable)
    ):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if not isinstance(error, asyncpg.PostgresError) or not isinstance(sqlstate, str):
        return False
    return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or sqlstate in _TRANSIENT_SQLSTATES


_TEXT_ERRORS = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)


def translate(error: BaseException) -> BaseException | None:
    """Our error for a driver error every caller handles alike, or None (see the module)."""
    if isinstance(error, (*_TEXT_ERRORS, UnicodeEncodeError)):
        # Postgres refuses NUL in text, and a lone surrogate cannot be sent as UTF-8 at all;
        # only caller text gets this far.
        return InvalidInput("text may not contain NUL characters or invalid Unicode")
    if not isinstance(error, DatabaseUnavailable) and is_transient(error):
        return DatabaseUnavailable()
    return None


_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
    UnicodeEncodeError,
)
"""What the driver raises (a lost connection surfaces as OSError or a timeout; text that is
not valid Unicode fails while the driver encodes it)."""


def _reraise(error: Exception) -> NoReturn:
    """Raise ``error``, translated when it is one of the driver errors :func:`translate`
    knows."""
    ours = translate(error)
    if ours is not None:
        raise ours from error
    raise error


def redact_dsn(dsn: str) -> str:
    """The DSN with any password (in the user info or a ``password`` parameter) replaced by
    ``***``, for logs and messages. A DSN that is not a URL is not shown at all."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparseable dsn>"
    if not parts.scheme.startswith("postgres"):
        return "<dsn>"
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = re.sub(r"(?i)(^|&)(password)=[^&]*", r"\1\2=***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("jsonb", "json"):
        await conn.set_type_codec(
            name, encoder=encode_json, decoder=decode_json, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection goes through when it returns to the pool, besides the driver's own
    rollback of a transaction left open: nothing.

    The driver's default sends four statements (unlock advisory locks, close cursors, UNLISTEN,
    RESET ALL) on every release, a second round trip for every pooled statement that doubled
    its cost. Pooled connections here keep no session state: notifications have a connection
    of their own (:mod:`processgpt.db.listen`), and the migration lock is released by the
    code that takes it.
    """


class Database:
    """A pool of connections to one Postgres database.

    Use :meth:`connect`; every connection has JSON codecs for ``json``/``jsonb`` installed
    (Python values in, Python values out). Connections keep no session state between uses (see
    :func:`_keep_session`): code that sets any (``SET``, advisory locks, ``LISTEN``) must undo it
    before it gives the connection back, or use a connection of its own.
    """

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self.pool = pool
        self.dsn = dsn

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_within: float = 10.0,
        server_settings: dict[str, str] | None = None,
    ) -> Database:
        """Open a pool, retrying for up to ``connect_within`` seconds while the server starts.
        ``server_settings`` are the session settings every connection starts with."""
        deadline = asyncio.get_running_loop().time() + connect_within
        while True:
            try:
                pool = await asyncpg.create_pool(
                    dsn,
                    min_size=min_size,
                    max_size=max_size,
                    init=_init_connection,
                    reset=_keep_session,
                    command_timeout=60,
                    max_inactive_connection_lifetime=300,
                    server_settings=server_settings,
                )
            except TRANSIENT_ERRORS as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise ConnectionError(
                        f"cannot connect to {redact_dsn(dsn)}: {type(exc).__name__}"
                    ) from None
                await asyncio.sleep(0.2)
                continue
            return cls(pool, dsn)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a transaction, committed when the block ends (rolled back on an
        exception). Driver errors leaving the block are translated (see the module)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn
        except _DRIVER_ERRORS as exc:
            _reraise(exc)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return list(await self.pool.fetch(query, *args))
        except _DRIVER_ERRORS as exc:
            _reraise(exc)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self.pool.fetchrow(query, *args)
        except _DRIVER_ERRORS as exc:
            _reraise(exc)

    async def fetchval(self, query: str, *args: Any) -> Any:
        try:
            return await self.pool.fetchval(query, *args)
        except _DRIVER_ERRORS as exc:
            _reraise(exc)

    async def execute(self, query: str, *args: Any) -> str:
        try:
            return str(await self.pool.execute(query, *args))
        except _DRIVER_ERRORS as exc:
            _reraise(exc)

    async def ping(self, within: float = 2.0) -> None:
        """Raise :class:`DatabaseUnavailable` unless the server answers within ``within``
        seconds."""
        try:
            async with asyncio.timeout(within):
                await self.fetchval("SELECT 1")
        except TimeoutError:
            raise DatabaseUnavailable("the database does not answer") from None

"""Connection pool, codecs and the translation of driver errors."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from processgpt.domain.events import encode_json

log = logging.getLogger(__name__)

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


def is_transient(error: BaseException) -> bool:
    """Whether retrying the failed operation may succeed."""
    return isinstance(error, TRANSIENT_ERRORS)


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***``, for logs and messages."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparseable dsn>"
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=encode_json, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=encode_json, decoder=json.loads, schema="pg_catalog")


class Database:
    """A pool of connections to one Postgres database.

    Use :meth:`connect`; every connection has JSON codecs for ``json``/``jsonb`` installed
    (Python values in, Python values out).
    """

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self.pool = pool
        self.dsn = dsn

    @classmethod
    async def connect(
        cls, dsn: str, *, min_size: int = 1, max_size: int = 10, connect_within: float = 10.0
    ) -> Database:
        """Open a pool, retrying for up to ``connect_within`` seconds while the server starts."""
        deadline = asyncio.get_running_loop().time() + connect_within
        while True:
            try:
                pool = await asyncpg.create_pool(
                    dsn,
                    min_size=min_size,
                    max_size=max_size,
                    init=_init_connection,
                    command_timeout=60,
                    max_inactive_connection_lifetime=300,
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
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self.pool.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.pool.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        return str(await self.pool.execute(query, *args))

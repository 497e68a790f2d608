"""Numbered SQL migrations (``db/migrations/NNNN_name.sql``) and the version table.

:func:`migrate` applies every migration not yet recorded in ``schema_migrations``, each in its
own transaction, under an advisory lock so that processes starting together do not race.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

from processgpt.db.database import Database

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x70677074  # "pgpt": the advisory lock that serialises migrations


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in (resources.files("processgpt.db") / "migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be 1..n without gaps, found {versions}")
    return found


async def migrate(db: Database) -> list[Migration]:
    """Apply pending migrations; return those applied by this call."""
    applied: list[Migration] = []
    async with db.pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version    integer PRIMARY KEY,
                       name       text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for migration in available_migrations():
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
                log.info("migration applied version=%d name=%s", migration.version, migration.name)
                applied.append(migration)
        finally:
            try:
                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
            except BaseException:
                # Pooled connections are not reset on release: the lock must not outlive
                # this call on one.
                conn.terminate()
                raise
    # Types created by a migration are unknown to connections opened before it.
    await db.pool.expire_connections()
    return applied


async def current_version(db: Database) -> int:
    exists = await db.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await db.fetchval("SELECT COALESCE(max(version), 0) FROM schema_migrations"))

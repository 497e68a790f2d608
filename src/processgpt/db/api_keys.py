"""API keys: ``pgpt_<prefix>_<secret>``, stored as a SHA-256 hash only.

Keys carry 256 bits of randomness, so a fast hash is as safe as a slow one here, and lookups
stay a single indexed read.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES

KEY_PREFIX = "pgpt_"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class ApiKey:
    key: str  # shown once, when created
    tenant_id: str
    name: str
    prefix: str


class ApiKeyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, tenant_id: str, name: str = "") -> ApiKey:
        """Create a key for ``tenant_id`` (the tenant is created if new)."""
        prefix = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        async with self.db.transaction() as conn:
            await conn.execute(QUERIES["ensure_tenant"], tenant_id)
            await conn.execute(QUERIES["insert_api_key"], tenant_id, name, prefix, hash_key(key))
        return ApiKey(key, tenant_id, name, prefix)

    async def tenant_of(self, key: str) -> str | None:
        """The tenant a valid, unrevoked key belongs to, else None."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        row = await self.db.fetchrow(QUERIES["find_api_key"], hash_key(key))
        return None if row is None else str(row["tenant_id"])

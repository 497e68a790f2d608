"""API keys: ``pgpt_<prefix>_<secret>``, stored as a SHA-256 hash only.

Keys carry 256 bits of randomness, so a fast hash is as safe as a slow one here, and lookups
stay a single indexed read.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.domain.roles import Role

KEY_PREFIX = "pgpt_"
_PREFIX_DRAWS = 5
REVOCATIONS_CHANNEL = "processgpt_keys"
"""Notified with a key's prefix when it is revoked: API processes drop their cached keys."""


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class ApiKey:
    key: str  # shown once, when created
    tenant_id: str
    name: str
    prefix: str
    role: Role
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as listed: never the key itself."""

    prefix: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid credential speaks for: a tenant, with a role in it."""

    tenant_id: str
    role: Role
    subject: str | None = field(default=None, compare=False)
    """Who exactly, for records such as ``files.created_by``: ``key:<prefix>`` for an API key,
    ``jwt:<sub>`` for a token with a subject. Not part of equality."""


class ApiKeyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, tenant_id: str, name: str = "", role: Role = Role.MEMBER) -> ApiKey:
        """Create a key for ``tenant_id`` with ``role`` (the tenant is created if new). Its
        prefix is unique within the tenant: a prefix already taken is drawn again."""
        for _ in range(_PREFIX_DRAWS):
            prefix = secrets.token_hex(4)
            key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
            try:
                async with self.db.transaction() as conn:
                    await conn.execute(QUERIES["ensure_tenant"], tenant_id)
                    row = await conn.fetchrow(
                        QUERIES["insert_api_key"], tenant_id, name, prefix, hash_key(key), role
                    )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "api_keys_tenant_prefix":
                    raise
                continue
            return ApiKey(key, tenant_id, name, prefix, Role(role), row["created_at"])
        raise RuntimeError(f"no free key prefix for tenant {tenant_id!r} in {_PREFIX_DRAWS} draws")

    async def principal_of(self, key: str) -> Principal | None:
        """The tenant and role of a valid, unrevoked key, else None."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        row = await self.db.fetchrow(QUERIES["find_api_key"], hash_key(key))
        if row is None:
            return None
        prefix = key[len(KEY_PREFIX) :].split("_", 1)[0]
        return Principal(str(row["tenant_id"]), Role(row["role"]), f"key:{prefix[:20]}")

    async def tenant_of(self, key: str) -> str | None:
        """The tenant a valid, unrevoked key belongs to, else None."""
        principal = await self.principal_of(key)
        return None if principal is None else principal.tenant_id

    async def list_keys(self, tenant_id: str) -> list[ApiKeyInfo]:
        """The tenant's keys, oldest first, revoked ones included."""
        rows = await self.db.fetch(QUERIES["list_api_keys"], tenant_id)
        return [ApiKeyInfo(**{**dict(r), "role": Role(r["role"])}) for r in rows]

    async def revoke(self, tenant_id: str, prefix: str) -> bool:
        """Revoke the tenant's key with this prefix; False if it has no such valid key. API
        processes are notified when the revocation commits and drop their cached keys: the
        key is refused a few milliseconds after this returns."""
        return bool(await self.db.fetch(QUERIES["revoke_api_key"], tenant_id, prefix))

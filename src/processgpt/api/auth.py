"""Authentication: API keys (``Authorization: Bearer pgpt_…`` or ``X-API-Key``) and, when a
secret is configured, Supabase-compatible HS256 JWTs whose claims name the tenant
(``tenant_id``, or ``app_metadata.tenant_id``). Every route but health needs one."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import jwt

from processgpt.db.api_keys import KEY_PREFIX, ApiKeyRepository
from processgpt.domain.errors import Unauthorized

_CACHE_SECONDS = 30.0
_CACHE_SIZE = 10_000


class Authenticator:
    def __init__(
        self,
        keys: ApiKeyRepository,
        *,
        jwt_secret: str | None = None,
        jwt_audience: str | None = None,
    ) -> None:
        self._keys = keys
        self._jwt_secret = jwt_secret
        self._jwt_audience = jwt_audience
        self._cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    async def tenant_for(self, authorization: str | None, api_key: str | None) -> str:
        """The caller's tenant, or :class:`Unauthorized`."""
        token = api_key
        if token is None and authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                token = value.strip()
        if not token:
            raise Unauthorized("send an API key (Authorization: Bearer <key>) or a token")
        if token.startswith(KEY_PREFIX):
            tenant = await self._key_tenant(token)
        else:
            tenant = self._jwt_tenant(token)
        if tenant is None:
            raise Unauthorized("the API key or token is not valid")
        return tenant

    async def _key_tenant(self, key: str) -> str | None:
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        tenant = await self._keys.tenant_of(key)
        self._cache[key] = (now + _CACHE_SECONDS, tenant)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return tenant

    def _jwt_tenant(self, token: str) -> str | None:
        if not self._jwt_secret:
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._jwt_secret,
                algorithms=["HS256"],
                audience=self._jwt_audience,
                options={"verify_aud": self._jwt_audience is not None, "require": ["exp"]},
            )
        except jwt.PyJWTError:
            return None
        tenant = claims.get("tenant_id") or (claims.get("app_metadata") or {}).get("tenant_id")
        return str(tenant) if tenant else None

"""Authentication: API keys (``Authorization: Bearer pgpt_…`` or ``X-API-Key``) and, as an
option, Supabase-compatible JWTs: HS256 with a shared secret (``PROCESSGPT_JWT_SECRET``) or
asymmetric keys from a JWKS URL (``PROCESSGPT_JWT_JWKS_URL``: RS256/ES256/EdDSA). A token's
claims name the tenant (``tenant_id``, or ``app_metadata.tenant_id``) and it must carry
``exp``. Every route but health needs one.

Key lookups are cached for 30 s; a revocation (``processgpt keys revoke``) notifies every API
process, which drops its cache at once and ends the requests still using the key (see
:mod:`processgpt.api.credential_watch`)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Annotated, Any

import jwt
from fastapi import Depends, Header, Request

from processgpt.db.api_keys import KEY_PREFIX, ApiKeyRepository
from processgpt.domain.errors import Unauthorized

CREDENTIAL_SCOPE_KEY = "processgpt.credential"
"""ASGI scope key of the callable that is told the credential a request was let in with."""

_CACHE_SECONDS = 30.0
_CACHE_SIZE = 10_000


def _bearer_token(authorization: str | None, api_key: str | None) -> str | None:
    """The credential a request presents: its API key header, else its bearer token."""
    if api_key is not None:
        return api_key
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
    return None


class Authenticator:
    def __init__(
        self,
        keys: ApiKeyRepository,
        *,
        jwt_secret: str | None = None,
        jwt_jwks_url: str | None = None,
        jwt_audience: str | None = None,
    ) -> None:
        self._keys = keys
        self._jwt_secret = jwt_secret
        # Keys are fetched once and cached; an unknown key id refetches (key rotation).
        self._jwks = jwt.PyJWKClient(jwt_jwks_url, cache_keys=True) if jwt_jwks_url else None
        self._jwt_audience = jwt_audience
        self._cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._generation = 0  # bumped when the cache is dropped: reads begun before keep out

    async def tenant_for(
        self,
        authorization: str | None,
        api_key: str | None,
        *,
        scope: MutableMapping[str, Any] | None = None,
    ) -> str:
        """The caller's tenant, or :class:`Unauthorized`. With the request's ASGI ``scope``,
        the credential it was let in with is reported to the request's watch (see
        :mod:`processgpt.api.credential_watch`), which ends the request if it is revoked."""
        token = _bearer_token(authorization, api_key)
        if not token:
            raise Unauthorized("send an API key (Authorization: Bearer <key>) or a token")
        if token.startswith(KEY_PREFIX):
            tenant = await self._key_tenant(token)
        else:
            tenant = await self._jwt_tenant(token)
        if tenant is None:
            raise Unauthorized("the API key or token is not valid")
        if scope is not None and (watch := scope.get(CREDENTIAL_SCOPE_KEY)) is not None:
            watch(token)
        return tenant

    def forget_keys(self) -> None:
        """Drop every cached key lookup (a key was revoked, or revocations may have been
        missed while not listening)."""
        self._cache.clear()
        self._generation += 1

    async def _key_tenant(self, key: str) -> str | None:
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._generation
        tenant = await self._keys.tenant_of(key)
        if generation != self._generation:  # read before a revocation: do not keep it
            return tenant
        self._cache[key] = (now + _CACHE_SECONDS, tenant)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return tenant

    async def _jwt_tenant(self, token: str) -> str | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        algorithm = header.get("alg")
        key: Any
        if algorithm == "HS256" and self._jwt_secret:
            key = self._jwt_secret
        elif algorithm in _ASYMMETRIC and self._jwks is not None:
            try:  # may fetch the JWKS document: off the event loop
                key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
            except jwt.PyJWTError:
                return None
        else:
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._jwt_audience,
                options={"verify_aud": self._jwt_audience is not None, "require": ["exp"]},
            )
        except jwt.PyJWTError:
            return None
        tenant = claims.get("tenant_id") or (claims.get("app_metadata") or {}).get("tenant_id")
        return str(tenant) if tenant else None


_ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"})


async def tenant_of_request(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> str:
    """FastAPI dependency: the caller's tenant (401 without a valid key or token)."""
    authenticator: Authenticator = request.app.state.auth
    return await authenticator.tenant_for(authorization, x_api_key, scope=request.scope)


Tenant = Annotated[str, Depends(tenant_of_request)]
"""The caller's tenant, from its API key or token (401 otherwise)."""

"""Authentication: API keys (``Authorization: Bearer pgpt_…`` or ``X-API-Key``) and, as an
option, Supabase-compatible JWTs: HS256 with a shared secret (``PROCESSGPT_JWT_SECRET``) or
asymmetric keys from a JWKS URL (``PROCESSGPT_JWT_JWKS_URL``: RS256/ES256/EdDSA). Every route
but health, docs and the console needs one.

A credential names a :class:`~processgpt.db.api_keys.Principal`: a tenant and a
:class:`~processgpt.domain.roles.Role`. A key's role is stored with it
(``processgpt keys create --role``). A token's claims name the tenant (``tenant_id``, or
``app_metadata.tenant_id``) and the role (``processgpt_role``, or
``app_metadata.processgpt_role``; ``member`` when absent; an unknown role makes the token
invalid); it must carry ``exp``.

Key lookups are cached for 30 s; a revocation (``processgpt keys revoke``) notifies every API
process, which drops its cache at once and ends the requests still using the key (see
:mod:`processgpt.api.credential_watch`)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Any

import jwt

from processgpt.db.api_keys import KEY_PREFIX, ApiKeyRepository, Principal
from processgpt.domain.errors import Unauthorized
from processgpt.domain.roles import Role

CREDENTIAL_SCOPE_KEY = "processgpt.credential"
"""ASGI scope key of the callable that is told the credential a request was let in with."""

_CACHE_SECONDS = 30.0
_CACHE_SIZE = 10_000
_MAX_TOKEN_CHARS = 16_000


def presented_credential(authorization: str | None, api_key: str | None) -> str | None:
    """The credential a request presents: its API key header, else its bearer token."""
    if api_key:
        return api_key
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
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
        self._cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self._generation = 0  # bumped when the cache is dropped: reads begun before keep out

    async def authenticate(
        self, credential: str | None, *, scope: MutableMapping[str, Any] | None = None
    ) -> Principal:
        """Who ``credential`` (an API key or a JWT) speaks for, or :class:`Unauthorized`.
        With the request's ASGI ``scope``, the credential is reported to the request's watch
        (see :mod:`processgpt.api.credential_watch`), which ends the request if it is
        revoked or expires."""
        if not credential:
            raise Unauthorized("send an API key (Authorization: Bearer <key>) or a token")
        if credential.startswith(KEY_PREFIX):
            principal = await self._key_principal(credential)
        else:
            principal = await self._jwt_principal(credential)
        if principal is None:
            raise Unauthorized("the API key or token is not valid")
        if scope is not None and (watch := scope.get(CREDENTIAL_SCOPE_KEY)) is not None:
            watch(credential)
        return principal

    def forget_keys(self) -> None:
        """Drop every cached key lookup (a key was revoked, or revocations may have been
        missed while not listening)."""
        self._cache.clear()
        self._generation += 1

    async def _key_principal(self, key: str) -> Principal | None:
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._generation
        principal = await self._keys.principal_of(key)
        if generation != self._generation:  # read before a revocation: do not keep it
            return principal
        self._cache[key] = (now + _CACHE_SECONDS, principal)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal

    async def _jwt_principal(self, token: str) -> Principal | None:
        if len(token) > _MAX_TOKEN_CHARS:
            return None
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
        return principal_of_claims(claims)


def principal_of_claims(claims: dict[str, Any]) -> Principal | None:
    """The principal a verified token's claims name, or None (no tenant, unknown role)."""
    app_metadata = claims.get("app_metadata")
    if not isinstance(app_metadata, dict):
        app_metadata = {}
    tenant = claims.get("tenant_id") or app_metadata.get("tenant_id")
    role = claims.get("processgpt_role") or app_metadata.get("processgpt_role") or Role.MEMBER
    if not tenant or not isinstance(tenant, str | int) or role not in Role.__members__.values():
        return None
    subject = claims.get("sub")
    shown = f"jwt:{subject[:150]}" if isinstance(subject, str) and subject else None
    return Principal(str(tenant), Role(role), shown)


_ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"})

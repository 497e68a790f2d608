"""``/v1/keys``: a tenant admin manages the tenant's API keys. A key is shown once, when it
is created; it may not carry a role above its creator's."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response

from processgpt.api.deps import AdminCaller, KeysDep
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.db.api_keys import ApiKey, ApiKeyInfo
from processgpt.domain.errors import ApiKeyNotFound, Forbidden
from processgpt.protocols.views import CreatedKey, KeyCreate, KeyView

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=responses(*AUTHENTICATED, 403))


def key_view(info: ApiKeyInfo) -> KeyView:
    return KeyView(
        prefix=info.prefix,
        name=info.name,
        role=info.role,
        created_at=info.created_at,
        revoked_at=info.revoked_at,
    )


def created_key(created: ApiKey) -> CreatedKey:
    return CreatedKey(
        prefix=created.prefix,
        name=created.name,
        role=created.role,
        created_at=created.created_at,
        revoked_at=None,
        key=created.key,
        tenant_id=created.tenant_id,
    )


@router.post("", status_code=201, responses=responses(*WITH_BODY))
async def create_key(body: KeyCreate, caller: AdminCaller, keys: KeysDep) -> CreatedKey:
    """A new key of the caller's tenant. The answer is the only time the key is shown."""
    if not caller.role.allows(body.role):
        raise Forbidden(f"a {caller.role.value} cannot create a key with the {body.role} role")
    created = await keys.create(caller.tenant_id, body.name, body.role)
    log.info(
        "api key created tenant=%s prefix=%s role=%s", caller.tenant_id, created.prefix, body.role
    )
    return created_key(created)


@router.get("")
async def list_keys(caller: AdminCaller, keys: KeysDep) -> list[KeyView]:
    """The tenant's keys, oldest first, revoked ones included (prefixes, never keys)."""
    return [key_view(k) for k in await keys.list_keys(caller.tenant_id)]


@router.delete("/{prefix}", status_code=204, responses=responses(404, 422))
async def revoke_key(prefix: str, caller: AdminCaller, keys: KeysDep) -> Response:
    """Revoke a key at once: its requests in flight end, its streams stop. A key with a role
    above the caller's (the operator's key in this tenant) is not the caller's to revoke."""
    found = next((k for k in await keys.list_keys(caller.tenant_id) if k.prefix == prefix), None)
    if found is None or found.revoked_at is not None:
        raise ApiKeyNotFound(prefix)
    if not caller.role.allows(found.role):
        raise Forbidden(f"a {caller.role.value} cannot revoke a key with the {found.role} role")
    if not await keys.revoke(caller.tenant_id, prefix):
        raise ApiKeyNotFound(prefix)
    log.info("api key revoked tenant=%s prefix=%s", caller.tenant_id, prefix)
    return Response(status_code=204)

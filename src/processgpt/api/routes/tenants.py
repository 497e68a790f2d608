"""``/v1/tenants``: operator-only settings. A tenant's key, however privileged within its
tenant, gets 403 here."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Response

from processgpt.api.deps import KeysDep, OperatorCaller, TenantsDep
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.api.routes.keys import created_key
from processgpt.db.tenants import TenantInfo
from processgpt.protocols.views import CreatedKey, KeyCreate, TenantUpdate, TenantView

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/tenants", tags=["operator"], responses=responses(*AUTHENTICATED, 403)
)

TenantId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


def _view(info: TenantInfo) -> TenantView:
    return TenantView(
        id=info.id,
        name=info.name,
        max_pending_tasks=info.max_pending_tasks,
        weight=info.weight,
        max_tasks_per_second=info.max_tasks_per_second,
        retention_days=info.retention_days,
        created_at=info.created_at,
    )


@router.get("")
async def list_tenants(_operator: OperatorCaller, tenants: TenantsDep) -> list[TenantView]:
    """Every tenant."""
    return [_view(t) for t in await tenants.list_tenants()]


@router.get("/{tenant_id}", responses=responses(404, 422))
async def get_tenant(
    tenant_id: TenantId, _operator: OperatorCaller, tenants: TenantsDep
) -> TenantView:
    return _view(await tenants.get(tenant_id))


@router.put(
    "/{tenant_id}",
    responses={200: {"model": TenantView, "description": "Updated."}, **responses(*WITH_BODY)},
    status_code=201,
)
async def put_tenant(
    tenant_id: TenantId,
    body: TenantUpdate,
    _operator: OperatorCaller,
    tenants: TenantsDep,
    response: Response,
) -> TenantView:
    """Create the tenant (201) or change its settings (200)."""
    info, created = await tenants.put(
        tenant_id,
        max_pending_tasks=body.max_pending_tasks,
        set_limit="max_pending_tasks" in body.model_fields_set,
        weight=body.weight,
        max_tasks_per_second=body.max_tasks_per_second,
        set_rate="max_tasks_per_second" in body.model_fields_set,
        retention_days=body.retention_days,
        set_retention="retention_days" in body.model_fields_set,
    )
    if not created:
        response.status_code = 200
    log.info("tenant %s id=%s", "created" if created else "updated", tenant_id)
    return _view(info)


@router.post("/{tenant_id}/keys", status_code=201, responses=responses(*WITH_BODY, 404))
async def create_tenant_key(
    tenant_id: TenantId,
    body: KeyCreate,
    _operator: OperatorCaller,
    tenants: TenantsDep,
    keys: KeysDep,
) -> CreatedKey:
    """A key for any existing tenant (its first admin's, say). Shown once."""
    await tenants.get(tenant_id)
    created = await keys.create(tenant_id, body.name, body.role)
    log.info("api key created tenant=%s prefix=%s role=%s", tenant_id, created.prefix, body.role)
    return created_key(created)

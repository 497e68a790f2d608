"""``/v1/memories``: the Agent Boss's view of long-term memory. Members read and search;
teaching, correcting, pinning, retiring, approving proposals and policies need a tenant
admin. Every call is scoped to the caller's tenant; an id of another tenant is a 404."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from processgpt.api.deps import AdminCaller, Tenant, services_of
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.db.api_keys import Principal
from processgpt.domain.errors import InvalidInput
from processgpt.domain.memory import (
    MemoryChange,
    MemoryCreate,
    MemoryHit,
    MemoryItem,
    MemoryKind,
    MemoryPatch,
    MemoryScope,
    MemorySource,
    MemoryStatus,
)
from processgpt.memory.service import MemoryService

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/memories", tags=["memories"], responses=responses(*AUTHENTICATED))


def _memory(connection: HTTPConnection) -> MemoryService:
    service: MemoryService = services_of(connection).memory
    return service


MemoryDep = Annotated[MemoryService, Depends(_memory)]
Scoped = Annotated[str | None, Query(min_length=1, max_length=200)]


def _actor(caller: Principal) -> str:
    return f"api:{caller.role.value}"


class MemoryPage(BaseModel):
    items: list[MemoryItem]
    next_before: uuid.UUID | None = Field(
        description="Pass as `before` for the next (older) page; null at the end."
    )


class SearchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"query": "보고서 형식", "scope": {"agent": "writer"}}]},
    )

    query: str = Field(min_length=1, max_length=4000)
    scope: MemoryScope = Field(
        default_factory=MemoryScope,
        description="The scope searched *in*, as a task of it would: items of wider scopes "
        "are included, items of other agents/activities/users are not.",
    )
    limit: int = Field(default=5, ge=1, le=50)
    mode: str = Field(default="hybrid", pattern="^(hybrid|vector|text)$")


class ScopeDelete(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"scope": {"agent": "writer"}, "reason": "retired"}]},
    )

    scope: MemoryScope = Field(
        description="Exactly this scope: null columns match only items where they are null."
    )
    reason: str | None = Field(default=None, max_length=2000)


class Deleted(BaseModel):
    deleted: int = Field(description="How many live items were deleted (exact).")


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "ok"}]})

    reason: str | None = Field(default=None, max_length=2000)


class Policy(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"agent": "writer", "auto_activate": False}]},
    )

    agent: str | None = Field(
        default=None, min_length=1, max_length=200, description="null: the tenant's default"
    )
    auto_activate: bool = Field(
        description="Lessons from feedback become active at once (true) or wait as proposals."
    )


class PolicyView(BaseModel):
    agent: str | None
    auto_activate: bool
    updated_at: datetime


class MemoryUse(BaseModel):
    memory_id: uuid.UUID
    how: str
    rank: int
    score: float | None
    at: datetime
    content: str


def _policy(row: dict[str, object]) -> dict[str, object]:
    return {k: row[k] for k in ("agent", "auto_activate", "updated_at")}


@router.post(
    "",
    status_code=201,
    responses={
        200: {
            "model": MemoryItem,
            "description": "The same content in the same scope, taught before.",
        },
        **responses(*WITH_BODY, 403),
    },
)
async def create_memory(
    body: MemoryCreate, caller: AdminCaller, memory: MemoryDep, response: Response
) -> MemoryItem:
    """Teach an item (active, or a proposal with ``proposed``). The same content in the same
    scope again answers 200 with the existing item."""
    item, created = await memory.teach(caller.tenant_id, body, actor=_actor(caller))
    if not created:
        response.status_code = 200
    log.info("memory taught tenant=%s id=%s created=%s", caller.tenant_id, item.id, created)
    return item


@router.get("")
async def list_memories(
    *,
    tenant_id: Tenant,
    memory: MemoryDep,
    status: MemoryStatus | None = None,
    agent: Scoped = None,
    proc_def_id: Scoped = None,
    activity_id: Scoped = None,
    user_id: Scoped = None,
    kind: MemoryKind | None = None,
    pinned: bool | None = None,
    source: MemorySource | None = None,
    before: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MemoryPage:
    """Items newest first; each filter narrows (scope filters match that value exactly)."""
    scope = MemoryScope(
        agent=agent, proc_def_id=proc_def_id, activity_id=activity_id, user_id=user_id
    )
    items = await memory.repo.list_items(
        tenant_id,
        status=status,
        scope=scope,
        kind=kind,
        pinned=pinned,
        source=source,
        before=before,
        limit=limit,
    )
    return MemoryPage(items=items, next_before=items[-1].id if len(items) == limit else None)


@router.get("/proposals")
async def list_proposals(
    tenant_id: Tenant,
    memory: MemoryDep,
    agent: Scoped = None,
    before: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MemoryPage:
    """Items waiting for the Agent Boss (``status`` proposed)."""
    items = await memory.repo.list_items(
        tenant_id,
        status=MemoryStatus.PROPOSED,
        scope=MemoryScope(agent=agent),
        before=before,
        limit=limit,
    )
    return MemoryPage(items=items, next_before=items[-1].id if len(items) == limit else None)


@router.post("/search", responses=responses(*WITH_BODY))
async def search_memories(
    body: SearchRequest, tenant_id: Tenant, memory: MemoryDep
) -> list[MemoryHit]:
    """What a task in ``scope`` would retrieve for ``query``."""
    return await memory.search(tenant_id, body.scope, body.query, limit=body.limit, mode=body.mode)


@router.post("/delete", responses=responses(*WITH_BODY, 403))
async def delete_scope(body: ScopeDelete, caller: AdminCaller, memory: MemoryDep) -> Deleted:
    """Delete every live item of exactly one scope; answers how many (exact)."""
    count = await memory.repo.delete_scope(
        caller.tenant_id, body.scope, actor=_actor(caller), reason=body.reason
    )
    log.info("memory scope deleted tenant=%s count=%d", caller.tenant_id, count)
    return Deleted(deleted=count)


@router.get("/policies")
async def list_policies(tenant_id: Tenant, memory: MemoryDep) -> list[PolicyView]:
    """Whether lessons from feedback activate at once, per tenant and per agent."""
    return [PolicyView.model_validate(_policy(p)) for p in await memory.repo.policies(tenant_id)]


@router.put("/policies", responses=responses(*WITH_BODY, 403))
async def set_policy(body: Policy, caller: AdminCaller, memory: MemoryDep) -> PolicyView:
    """Set the tenant's (``agent`` null) or an agent's policy."""
    row = await memory.repo.set_policy(caller.tenant_id, body.agent, body.auto_activate)
    return PolicyView.model_validate(_policy(row))


@router.get("/used-by/{task_id}")
async def memories_used_by(
    task_id: uuid.UUID, tenant_id: Tenant, memory: MemoryDep
) -> list[MemoryUse]:
    """The items a task was given (pinned, retrieved) or found with ``memory_search``."""
    return [MemoryUse.model_validate(u) for u in await memory.repo.uses_of_task(tenant_id, task_id)]


@router.get("/{memory_id}", responses=responses(404))
async def get_memory(memory_id: uuid.UUID, tenant_id: Tenant, memory: MemoryDep) -> MemoryItem:
    """One item, whatever its status."""
    return await memory.repo.get(tenant_id, memory_id)


@router.patch("/{memory_id}", responses=responses(*WITH_BODY, 403, 404, 409))
async def update_memory(
    memory_id: uuid.UUID, body: MemoryPatch, caller: AdminCaller, memory: MemoryDep
) -> MemoryItem:
    """Change a live item in place (pin it, fix a typo, set an expiry). To replace what it
    says, prefer ``supersede``: the old item is kept."""
    return await memory.update(caller.tenant_id, memory_id, body, actor=_actor(caller))


@router.post(
    "/{memory_id}/supersede", status_code=201, responses=responses(*WITH_BODY, 403, 404, 409)
)
async def supersede_memory(
    memory_id: uuid.UUID, body: MemoryCreate, caller: AdminCaller, memory: MemoryDep
) -> MemoryItem:
    """Correct an active item: a new item in the same scope replaces it (``scope`` and
    ``proposed`` of the body are ignored); the old one becomes ``superseded``."""
    if body.proposed:
        raise InvalidInput(
            "a supersede is active at once; propose a new item instead", field="proposed"
        )
    return await memory.supersede(caller.tenant_id, memory_id, body, actor=_actor(caller))


@router.delete("/{memory_id}", responses=responses(403, 404, 409))
async def delete_memory(
    memory_id: uuid.UUID,
    caller: AdminCaller,
    memory: MemoryDep,
    reason: Annotated[str | None, Query(max_length=2000)] = None,
) -> MemoryItem:
    """Retire an item (``status`` deleted; its history stays)."""
    return await memory.delete(caller.tenant_id, memory_id, actor=_actor(caller), reason=reason)


@router.get("/{memory_id}/history", responses=responses(404))
async def memory_history(
    memory_id: uuid.UUID, tenant_id: Tenant, memory: MemoryDep
) -> list[MemoryChange]:
    """Every change of the item, oldest first: who, what, why, before and after."""
    return await memory.repo.history(tenant_id, memory_id)


@router.post("/{memory_id}/approve", responses=responses(*WITH_BODY, 403, 404, 409))
async def approve_memory(
    memory_id: uuid.UUID,
    caller: AdminCaller,
    memory: MemoryDep,
    body: Annotated[Decision | None, Body()] = None,
) -> MemoryItem:
    """Activate a proposal."""
    reason = body.reason if body else None
    return await memory.approve(caller.tenant_id, memory_id, actor=_actor(caller), reason=reason)


@router.post("/{memory_id}/reject", responses=responses(*WITH_BODY, 403, 404, 409))
async def reject_memory(
    memory_id: uuid.UUID,
    caller: AdminCaller,
    memory: MemoryDep,
    body: Annotated[Decision | None, Body()] = None,
) -> MemoryItem:
    """Reject a proposal (``status`` deleted, logged as rejected)."""
    reason = body.reason if body else None
    return await memory.reject(caller.tenant_id, memory_id, actor=_actor(caller), reason=reason)

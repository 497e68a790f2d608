"""``/v1/agents``: the tenant's agent profiles. Reading needs a member's key; creating,
changing and deleting need a tenant admin's."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from processgpt.api.deps import AdminCaller, AgentsDep, Tenant
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.db.agents import AgentProfilePatch, AgentProfileSpec

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/agents", tags=["agents"], responses=responses(*AUTHENTICATED))


class AgentCreate(AgentProfileSpec):
    """A new agent profile: its name plus the profile's fields."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "support-bot",
                    "agent_orch": "demo",
                    "instructions": "Answer customers briefly.",
                    "persona": "Friendly.",
                }
            ]
        }
    )

    name: str = Field(examples=["support-bot"])


class AgentView(BaseModel):
    name: str
    agent_orch: str
    model: str | None
    instructions: str | None
    persona: str | None
    tools: list[str]
    skills: list[str]
    created_at: datetime
    updated_at: datetime


def _view(row: dict[str, Any]) -> AgentView:
    return AgentView.model_validate({k: v for k, v in row.items() if k in AgentView.model_fields})


@router.post("", status_code=201, responses=responses(*WITH_BODY, 403, 409))
async def create_agent(body: AgentCreate, caller: AdminCaller, repo: AgentsDep) -> AgentView:
    """Create a profile: tasks, chats and A2A calls may then name it instead of an
    orchestrator."""
    spec = AgentProfileSpec.model_validate(body.model_dump(exclude={"name"}))
    row = await repo.create(caller.tenant_id, body.name, spec)
    log.info("agent profile created tenant=%s name=%s", caller.tenant_id, body.name)
    return _view(row)


@router.get("")
async def list_agents(tenant_id: Tenant, repo: AgentsDep) -> list[AgentView]:
    """The tenant's profiles."""
    return [_view(r) for r in await repo.list_agents(tenant_id)]


@router.get("/{name}", responses=responses(404))
async def get_agent(name: str, tenant_id: Tenant, repo: AgentsDep) -> AgentView:
    """One profile."""
    return _view(await repo.get(tenant_id, name))


@router.put("/{name}", responses=responses(*WITH_BODY, 403, 404))
async def replace_agent(
    name: str, body: AgentProfileSpec, caller: AdminCaller, repo: AgentsDep
) -> AgentView:
    """Replace the whole profile."""
    return _view(await repo.update(caller.tenant_id, name, body, replace=True))


@router.patch("/{name}", responses=responses(*WITH_BODY, 403, 404))
async def patch_agent(
    name: str, body: AgentProfilePatch, caller: AdminCaller, repo: AgentsDep
) -> AgentView:
    """Change some fields (absent fields are kept, null clears)."""
    return _view(await repo.update(caller.tenant_id, name, body, replace=False))


@router.delete("/{name}", status_code=204, responses=responses(403, 404))
async def delete_agent(name: str, caller: AdminCaller, repo: AgentsDep) -> Response:
    """Delete the profile; tasks already queued under it run with the defaults."""
    await repo.delete(caller.tenant_id, name)
    log.info("agent profile deleted tenant=%s name=%s", caller.tenant_id, name)
    return Response(status_code=204)

"""Agent profiles (``/v1/agents``) and the tenant's MCP servers (``/v1/mcp-servers``).

Everything is scoped to the caller's tenant: another tenant's profile or server is a 404.
MCP ``env`` and ``headers`` values are secrets: responses show their keys with ``"***"``,
URLs lose their userinfo and query string, and nothing about them is logged.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI, Response
from pydantic import BaseModel

from processgpt.agents import registry
from processgpt.api.auth import Tenant
from processgpt.db.agents import AgentProfilePatch, AgentProfileSpec, AgentRepository, McpServerSpec
from processgpt.db.database import Database

log = logging.getLogger(__name__)

MASK = "***"


class AgentCreate(AgentProfileSpec):
    """A new agent profile: its name plus the profile's fields."""

    name: str


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


class McpServerView(BaseModel):
    name: str
    transport: str
    enabled: bool
    command: str | None = None
    args: list[str] | None = None
    cwd: str | None = None
    url: str | None = None
    env: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    created_at: datetime
    updated_at: datetime


def _agent_view(row: dict[str, Any]) -> AgentView:
    return AgentView.model_validate({k: v for k, v in row.items() if k in AgentView.model_fields})


def safe_url(url: str) -> str:
    """The URL without userinfo, query string or fragment (they may carry tokens)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def server_view(row: dict[str, Any]) -> McpServerView:
    """A server row as the API shows it: secret values masked."""
    config: dict[str, Any] = row.get("config") or {}
    view: dict[str, Any] = {
        "name": row["name"],
        "transport": row["transport"],
        "enabled": row["enabled"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if row["transport"] == "stdio":
        view["command"] = config.get("command")
        view["args"] = [str(a) for a in config.get("args") or []]
        view["cwd"] = config.get("cwd")
        view["env"] = dict.fromkeys(config.get("env") or {}, MASK)
    else:
        view["url"] = safe_url(str(config.get("url") or ""))
        view["headers"] = dict.fromkeys(config.get("headers") or {}, MASK)
    return McpServerView.model_validate(view)


def install(app: FastAPI, db: Database) -> None:
    """Add the ``/v1/agents`` and ``/v1/mcp-servers`` routes to ``app``."""
    repo = AgentRepository(db, known_orchestrators=frozenset(registry.available()))

    @app.post("/v1/agents", status_code=201, tags=["agents"])
    async def create_agent(body: AgentCreate, tenant_id: Tenant) -> AgentView:
        spec = AgentProfileSpec.model_validate(body.model_dump(exclude={"name"}))
        row = await repo.create(tenant_id, body.name, spec)
        log.info("agent profile created tenant=%s name=%s", tenant_id, body.name)
        return _agent_view(row)

    @app.get("/v1/agents", tags=["agents"])
    async def list_agents(tenant_id: Tenant) -> list[AgentView]:
        return [_agent_view(r) for r in await repo.list_agents(tenant_id)]

    @app.get("/v1/agents/{name}", tags=["agents"])
    async def get_agent(name: str, tenant_id: Tenant) -> AgentView:
        return _agent_view(await repo.get(tenant_id, name))

    @app.put("/v1/agents/{name}", tags=["agents"])
    async def replace_agent(name: str, body: AgentProfileSpec, tenant_id: Tenant) -> AgentView:
        return _agent_view(await repo.update(tenant_id, name, body, replace=True))

    @app.patch("/v1/agents/{name}", tags=["agents"])
    async def patch_agent(name: str, body: AgentProfilePatch, tenant_id: Tenant) -> AgentView:
        return _agent_view(await repo.update(tenant_id, name, body, replace=False))

    @app.delete("/v1/agents/{name}", status_code=204, tags=["agents"])
    async def delete_agent(name: str, tenant_id: Tenant) -> Response:
        await repo.delete(tenant_id, name)
        log.info("agent profile deleted tenant=%s name=%s", tenant_id, name)
        return Response(status_code=204)

    @app.post("/v1/mcp-servers", status_code=201, tags=["mcp"])
    async def add_mcp_server(body: McpServerSpec, tenant_id: Tenant) -> McpServerView:
        row = await repo.add_mcp_server(tenant_id, body)
        log.info("mcp server added tenant=%s name=%s", tenant_id, body.name)
        return server_view(row)

    @app.get("/v1/mcp-servers", tags=["mcp"])
    async def list_mcp_servers(tenant_id: Tenant) -> list[McpServerView]:
        return [server_view(r) for r in await repo.list_mcp_servers(tenant_id)]

    @app.get("/v1/mcp-servers/{name}", tags=["mcp"])
    async def get_mcp_server(name: str, tenant_id: Tenant) -> McpServerView:
        return server_view(await repo.get_mcp_server(tenant_id, name))

    @app.post("/v1/mcp-servers/{name}/enable", tags=["mcp"])
    async def enable_mcp_server(name: str, tenant_id: Tenant) -> McpServerView:
        return server_view(await repo.set_mcp_server_enabled(tenant_id, name, True))

    @app.post("/v1/mcp-servers/{name}/disable", tags=["mcp"])
    async def disable_mcp_server(name: str, tenant_id: Tenant) -> McpServerView:
        return server_view(await repo.set_mcp_server_enabled(tenant_id, name, False))

    @app.delete("/v1/mcp-servers/{name}", status_code=204, tags=["mcp"])
    async def delete_mcp_server(name: str, tenant_id: Tenant) -> Response:
        await repo.delete_mcp_server(tenant_id, name)
        log.info("mcp server removed tenant=%s name=%s", tenant_id, name)
        return Response(status_code=204)

"""``/v1/mcp-servers``: the tenant's MCP servers. Reading needs a member's key; adding,
switching and removing need a tenant admin's.

Everything is scoped to the caller's tenant: another tenant's server is a 404. ``env`` and
``headers`` values are secrets: responses show their keys with ``"***"``, URLs lose their
userinfo and query string, and nothing about them is logged.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Response
from pydantic import BaseModel

from processgpt.api.deps import AdminCaller, AgentsDep, Tenant
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.db.agents import McpServerSpec

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/mcp-servers", tags=["mcp"], responses=responses(*AUTHENTICATED))

MASK = "***"


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


@router.post("", status_code=201, responses=responses(*WITH_BODY, 403, 409))
async def add_mcp_server(
    body: McpServerSpec, caller: AdminCaller, repo: AgentsDep
) -> McpServerView:
    """Add a server; it applies from the tenant's next task."""
    row = await repo.add_mcp_server(caller.tenant_id, body)
    log.info("mcp server added tenant=%s name=%s", caller.tenant_id, body.name)
    return server_view(row)


@router.get("")
async def list_mcp_servers(tenant_id: Tenant, repo: AgentsDep) -> list[McpServerView]:
    """The tenant's servers (secrets masked)."""
    return [server_view(r) for r in await repo.list_mcp_servers(tenant_id)]


@router.get("/{name}", responses=responses(404))
async def get_mcp_server(name: str, tenant_id: Tenant, repo: AgentsDep) -> McpServerView:
    """One server (secrets masked)."""
    return server_view(await repo.get_mcp_server(tenant_id, name))


@router.post("/{name}/enable", responses=responses(403, 404))
async def enable_mcp_server(name: str, caller: AdminCaller, repo: AgentsDep) -> McpServerView:
    """Switch the server on (from the next task)."""
    return server_view(await repo.set_mcp_server_enabled(caller.tenant_id, name, True))


@router.post("/{name}/disable", responses=responses(403, 404))
async def disable_mcp_server(name: str, caller: AdminCaller, repo: AgentsDep) -> McpServerView:
    """Switch the server off (from the next task)."""
    return server_view(await repo.set_mcp_server_enabled(caller.tenant_id, name, False))


@router.delete("/{name}", status_code=204, responses=responses(403, 404))
async def delete_mcp_server(name: str, caller: AdminCaller, repo: AgentsDep) -> Response:
    """Remove the server."""
    await repo.delete_mcp_server(caller.tenant_id, name)
    log.info("mcp server removed tenant=%s name=%s", caller.tenant_id, name)
    return Response(status_code=204)

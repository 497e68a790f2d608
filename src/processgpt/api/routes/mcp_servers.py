"""``/v1/mcp-servers``: the tenant's MCP servers, and ``/v1/mcp-catalog``: the stdio servers
the operator offers. Reading needs a member's key; adding, switching and removing need a
tenant admin's.

A tenant adds an HTTP server (``{"name", "url", "headers"?}``) or switches on an entry of the
operator's catalog (``{"name", "catalog", "env"?}``). A command is never accepted (422
``stdio_not_allowed``: commands on worker hosts are the operator's alone); a URL whose host is
a loopback, private, link-local or otherwise internal address is refused at once (422
``url_not_allowed``; host names are checked again when a worker connects); an unknown catalog
entry is 422 ``unknown_mcp_catalog_entry``, an env name the entry does not take 422
``invalid_input``. Nothing is written when a request is refused.

Everything is scoped to the caller's tenant: another tenant's server is a 404. ``env`` and
``headers`` values are secrets, stored encrypted: responses show their names with ``"***"``,
URLs only their ``scheme://host[:port]``, a catalog server shows its entry's name
(not the operator's command), and a stdio row from before (disabled) shows its command with
``"***"`` for each argument. Nothing about them is logged.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel

from processgpt.api.deps import AdminCaller, McpServersDep, ServicesDep, Tenant
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.db.mcp_servers import STDIO_REFUSED, McpServerSpec, shown_url
from processgpt.domain.errors import StdioNotAllowed
from processgpt.tools.mcp_config import OperatorConfig

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/mcp-servers", tags=["mcp"], responses=responses(*AUTHENTICATED))
catalog_router = APIRouter(
    prefix="/v1/mcp-catalog", tags=["mcp"], responses=responses(*AUTHENTICATED)
)

MASK = "***"


class McpServerView(BaseModel):
    name: str
    transport: str
    """``http``, ``catalog``, or ``stdio`` (a server added before commands were refused;
    it stays disabled)."""
    enabled: bool
    url: str | None = None
    headers: dict[str, str] | None = None
    catalog: str | None = None
    env: dict[str, str] | None = None
    command: str | None = None
    args: list[str] | None = None
    cwd: str | None = None
    created_at: datetime
    updated_at: datetime


class McpCatalogEntryView(BaseModel):
    name: str
    description: str
    env: list[str]
    """The env names a tenant may give values for."""


def safe_url(url: str) -> str:
    """``scheme://host[:port]`` of the URL (userinfo, path, query and fragment may carry
    tokens)."""
    return shown_url(url)


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
    if row["transport"] == "http":
        view["url"] = safe_url(str(config.get("url") or ""))
        view["headers"] = dict.fromkeys(config.get("headers") or {}, MASK)
    elif row["transport"] == "catalog":
        view["catalog"] = config.get("catalog")
        view["env"] = dict.fromkeys(config.get("env") or {}, MASK)
    else:
        view["command"] = config.get("command")
        view["args"] = [MASK for _ in config.get("args") or []]
        view["cwd"] = config.get("cwd")
        view["env"] = dict.fromkeys(config.get("env") or {}, MASK)
    return McpServerView.model_validate(view)


@router.post("", status_code=201, responses=responses(*WITH_BODY, 403, 409))
async def add_mcp_server(
    body: McpServerSpec, caller: AdminCaller, repo: McpServersDep, services: ServicesDep
) -> McpServerView:
    """Add an HTTP server or switch on a catalog entry; it applies from the tenant's next
    task."""
    try:
        if body.names_a_command:
            raise StdioNotAllowed(STDIO_REFUSED, field="command")
        if body.url is not None:
            services.mcp_policy.check_url(body.url)
        if body.catalog is not None:
            operator = OperatorConfig.read(services.mcp_settings.config)
            operator.check_reference(caller.tenant_id, body.catalog, set(body.env))
    except StdioNotAllowed:
        log.warning("mcp server refused: a command tenant=%s name=%s", caller.tenant_id, body.name)
        raise
    row = await repo.add(caller.tenant_id, body)
    log.info(
        "mcp server added tenant=%s name=%s transport=%s",
        caller.tenant_id,
        body.name,
        body.transport,
    )
    return server_view(row)


@router.get("")
async def list_mcp_servers(tenant_id: Tenant, repo: McpServersDep) -> list[McpServerView]:
    """The tenant's servers (secrets masked)."""
    return [server_view(r) for r in await repo.list_servers(tenant_id)]


@router.get("/{name}", responses=responses(404))
async def get_mcp_server(name: str, tenant_id: Tenant, repo: McpServersDep) -> McpServerView:
    """One server (secrets masked)."""
    return server_view(await repo.get(tenant_id, name))


@router.post("/{name}/enable", responses=responses(403, 404, 422))
async def enable_mcp_server(name: str, caller: AdminCaller, repo: McpServersDep) -> McpServerView:
    """Switch the server on (from the next task). A stdio server cannot be: 422
    ``stdio_not_allowed``."""
    return server_view(await repo.set_enabled(caller.tenant_id, name, True))


@router.post("/{name}/disable", responses=responses(403, 404))
async def disable_mcp_server(name: str, caller: AdminCaller, repo: McpServersDep) -> McpServerView:
    """Switch the server off (from the next task)."""
    return server_view(await repo.set_enabled(caller.tenant_id, name, False))


@router.delete("/{name}", status_code=204, responses=responses(403, 404))
async def delete_mcp_server(name: str, caller: AdminCaller, repo: McpServersDep) -> Response:
    """Remove the server."""
    await repo.delete(caller.tenant_id, name)
    log.info("mcp server removed tenant=%s name=%s", caller.tenant_id, name)
    return Response(status_code=204)


@catalog_router.get("")
async def list_mcp_catalog(tenant_id: Tenant, services: ServicesDep) -> list[McpCatalogEntryView]:
    """The stdio servers the operator offers to the tenant: enable one with
    ``POST /v1/mcp-servers {"name", "catalog", "env"}``."""
    operator = OperatorConfig.read(services.mcp_settings.config)
    return [
        McpCatalogEntryView(name=name, description=entry.description, env=sorted(entry.tenant_env))
        for name, entry in sorted(operator.catalog_for(tenant_id).items())
    ]

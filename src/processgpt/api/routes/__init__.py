"""One router per resource; :func:`processgpt.api.app.create_app` includes them all."""

from __future__ import annotations

from fastapi import APIRouter

from processgpt.api.routes import (
    a2a,
    agents,
    chat,
    compat,
    console,
    files,
    forms,
    health,
    incidents,
    keys,
    mcp_servers,
    memories,
    orchestrators,
    process_definitions,
    processes,
    schedules,
    tasks,
    tenants,
    worklist,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    tasks.router,
    processes.router,
    incidents.router,
    worklist.router,
    worklist.complete_router,
    compat.router,
    process_definitions.router,
    forms.router,
    schedules.router,
    chat.router,
    files.router,
    agents.router,
    memories.router,
    mcp_servers.router,
    mcp_servers.catalog_router,
    orchestrators.router,
    keys.router,
    tenants.router,
    a2a.router,
    console.router,
)

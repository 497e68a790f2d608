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
    metrics,
    notifications,
    orchestrators,
    process_definitions,
    processes,
    schedules,
    tasks,
    tenants,
    webhooks,
    workers,
    worklist,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    metrics.router,
    tasks.router,
    processes.router,
    incidents.router,
    worklist.router,
    worklist.complete_router,
    compat.router,
    process_definitions.router,
    forms.router,
    schedules.router,
    notifications.router,
    webhooks.router,
    chat.router,
    files.router,
    agents.router,
    memories.router,
    mcp_servers.router,
    mcp_servers.catalog_router,
    orchestrators.router,
    workers.router,
    keys.router,
    tenants.router,
    a2a.router,
    console.router,
)

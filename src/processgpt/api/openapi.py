"""What the OpenAPI document says about the API as a whole."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

DESCRIPTION = """\
The Execution API of processgpt: start processes and tasks, answer agents that asked for
input, give feedback, and follow progress live (SSE, WebSocket, A2A).

**Authentication.** Every operation but health, the agent cards and these docs needs an API
key or a JWT: `Authorization: Bearer <credential>` or `X-API-Key: <key>` ("Authorize"
above takes either). Keys are created with `processgpt keys create --tenant T --role R` or
`POST /v1/keys`. Everything is scoped to the credential's tenant: another tenant's task is a
404. Roles: `member` (run work), `admin` (also keys, agent profiles, MCP servers),
`operator` (also `/v1/tenants`).

**Errors.** Every error is `{"error": {"code", "message"}}` with a stable `code`; a refused
request changes nothing. `503 database_unavailable` and `429 too_many_pending` carry
`Retry-After`.
"""

TAGS: list[dict[str, Any]] = [
    {"name": "tasks", "description": "Tasks: work items run by agents."},
    {"name": "processes", "description": "Process instances: start, read, follow, change."},
    {"name": "worklist", "description": "People's open work items, and completing them."},
    {"name": "streams", "description": "Live views of the event log (SSE, resumable)."},
    {"name": "chat", "description": "Chats with an agent: WebSocket and AI SDK `useChat`."},
    {"name": "notifications", "description": "People's notifications, listed and followed."},
    {"name": "webhooks", "description": "The tenant's webhook endpoints and deliveries."},
    {"name": "files", "description": "Files: upload, download, signed links."},
    {"name": "documents", "description": "Documents steps stored as their results."},
    {"name": "agents", "description": "Orchestrators and the tenant's agent profiles."},
    {"name": "mcp", "description": "The tenant's MCP servers (HTTP)."},
    {"name": "keys", "description": "The tenant's API keys (admin)."},
    {"name": "operator", "description": "Operator-only settings."},
    {"name": "a2a", "description": "Every agent as an A2A agent."},
    {"name": "compat", "description": "ProcessGPT's own entry points (`/complete`)."},
    {"name": "health", "description": "Liveness and readiness."},
    {"name": "operations", "description": "Metrics: the tenant's queue and timing summary."},
]


def install(app: FastAPI) -> None:
    """Serve the document with every validation answer described as what it really is: FastAPI
    declares ``422`` with its own ``HTTPValidationError`` body for every operation that
    validates input, while this API answers ``{"error": {"code": "invalid_input", ...}}``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            _our_validation_errors(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _our_validation_errors(doc: dict[str, Any]) -> None:
    ours = {"$ref": "#/components/schemas/ErrorBody"}
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            response = operation.get("responses", {}).get("422")
            content = (response or {}).get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                content["schema"] = ours
                response["description"] = VALIDATION_DESCRIPTION
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


VALIDATION_DESCRIPTION = (
    "`invalid_input` (or a more precise code such as `unknown_agent`): nothing changed."
)

"""``/a2a/{agent}/``: every agent as an A2A agent (see :mod:`processgpt.api.a2a`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from processgpt.api.a2a import CARD_PATH
from processgpt.api.deps import ServicesDep, Tenant
from processgpt.api.errors import AUTHENTICATED, error_response, responses
from processgpt.domain.errors import UnknownAgent

router = APIRouter(prefix="/a2a/{agent}", tags=["a2a"])

_RPC: dict[str, Any] = {
    "summary": "A2A JSON-RPC",
    "description": "JSON-RPC 2.0 (A2A protocol 1.0, and the 0.3 method names `message/send`, "
    "`message/stream`, `tasks/get`, `tasks/cancel`, `tasks/resubscribe`). Errors of the "
    "protocol are JSON-RPC error objects in a 200 answer; an unknown agent is a 404.",
    "responses": {
        200: {
            "description": "A JSON-RPC response, or an SSE stream for streaming methods.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        },
        **responses(*AUTHENTICATED, 404),
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "message/send",
                        "params": {
                            "message": {
                                "role": "user",
                                "messageId": "m-1",
                                "parts": [{"kind": "text", "text": "hello"}],
                            }
                        },
                    },
                }
            },
        }
    },
}


def _no_agent(exc: UnknownAgent) -> JSONResponse:
    """The agent in the URL does not exist: 404, naming the agents there are."""
    return error_response(exc.code, exc.message, 404)


async def _rpc(agent: str, request: Request, tenant_id: Tenant, services: ServicesDep) -> Response:
    try:
        await services.a2a.check_agent(agent, tenant_id)
    except UnknownAgent as exc:
        return _no_agent(exc)
    return await services.a2a.handle(request, tenant_id)


router.add_api_route("/", _rpc, methods=["POST"], **_RPC)
router.add_api_route("", _rpc, methods=["POST"], include_in_schema=False)


@router.get(CARD_PATH, summary="Agent card", responses=responses(404, 503))
async def card(agent: str, request: Request, services: ServicesDep) -> JSONResponse:
    """The agent's A2A card (public)."""
    try:
        return JSONResponse(await services.a2a.card(agent, str(request.base_url)))
    except UnknownAgent as exc:
        return _no_agent(exc)

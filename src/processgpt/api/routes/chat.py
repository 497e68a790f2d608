"""Chat routes: the WebSocket chat protocol and the AI SDK ``useChat`` endpoints (see
:mod:`processgpt.api.chat` for what a chat is)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import Response, StreamingResponse

from processgpt.api import sse
from processgpt.api.auth import presented_credential
from processgpt.api.chat import (
    RUNNING,
    ChatRequest,
    ChatSession,
    chat_sse,
    last_user_message,
    refuse_after_accept,
)
from processgpt.api.chat_files import ChatFiles, origin_of
from processgpt.api.deps import Caller, ServicesDep, Tenant
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.api.services import Services
from processgpt.db.chats import Chat, check_chat_id
from processgpt.domain.errors import ChatBusy, ProcessGPTError
from processgpt.protocols.views import WARNING_HEADER, ErrorBody
from processgpt.protocols.ws_chat import MsgError, MsgGracefulDisconnect

router = APIRouter(tags=["chat"], responses=responses(*AUTHENTICATED))


@router.websocket("/v1/agent_ws/{chat_id}/")
async def agent_ws(
    ws: WebSocket,
    chat_id: str,
    services: ServicesDep,
    *,
    agent: str | None = None,
    api_key: str | None = None,
    token: str | None = None,
) -> None:
    """The chat protocol of the Lambda Agent API. The key comes in `Authorization: Bearer`,
    `X-API-Key`, or (browsers cannot set headers) `?api_key=` / `?token=`."""
    sockets = services.chat_sockets
    try:
        credential = presented_credential(
            ws.headers.get("authorization"), ws.headers.get("x-api-key") or api_key or token
        )
        principal = await services.auth.authenticate(credential, scope=ws.scope)
        chat = await services.chats.open(principal.tenant_id, chat_id, agent)
    except ProcessGPTError as exc:
        await refuse_after_accept(ws, MsgError(code=exc.code, details=exc.message))
        return
    if sockets.closing:
        await refuse_after_accept(ws, MsgGracefulDisconnect(), code=1001)
        return
    try:
        lost = await sockets.locks.acquire(chat.tenant_id, chat.id)
    except ProcessGPTError as exc:
        await refuse_after_accept(ws, MsgError(code=exc.code, details=exc.message), 1011)
        return
    if lost is None:
        # Before accept: the handshake fails with HTTP 403, as chat clients expect.
        await ws.close(code=1008, reason=ChatBusy.code)
        return
    base = str(ws.base_url).replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    session = ChatSession(
        ws,
        chat,
        services.chats,
        services.hub,
        services.settings.sse_heartbeat,
        file_url=services.files.link_maker(chat.tenant_id, base),
        served=services.served,
    )
    sockets.sessions.add(session)
    try:
        await ws.accept()
        await session.serve(lost)
    finally:
        sockets.sessions.discard(session)
        await sockets.locks.release(chat.tenant_id, chat.id, lost)


@router.post(
    "/v1/chat",
    response_class=StreamingResponse,
    responses={
        **sse.OPENAPI,
        **responses(*WITH_BODY, 404, 409, 429),
        415: {
            "model": ErrorBody,
            "description": "`unsupported_media_type`: a file part of a type not accepted.",
        },
    },
)
async def post_chat(
    body: ChatRequest,
    caller: Caller,
    services: ServicesDep,
    request: Request,
    agent: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    """The AI SDK `useChat` endpoint: the last user message starts the chat's next turn (or
    answers the agent's question); the reply streams as a UI message stream. `agent` (body
    or query) chooses the agent of a new chat (default `demo`). The message's `file` parts
    become the chat's files, named in the turn's task (`input.attachments`): `data:` URLs
    (at most one file of the size limit per request), or links to this server's files
    (`/v1/files/{id}/content`); other URLs are refused (`url_not_allowed`: upload the file
    with `POST /v1/files` and send its link). When no live worker serves
    the agent, the stream says so after its start (a transient `data-warnings` part) and so
    does an `X-ProcessGPT-Warning` header."""
    text, parts = last_user_message(body.messages)
    chats = services.chats
    chat = await chats.open(caller.tenant_id, body.id, body.agent or agent)
    attached, stored = await chat_files(services, request).store(chat, parts, caller.subject)
    try:
        turn, task = await chats.start_turn(chat, text, [str(f.id) for f in attached])
    except BaseException:
        await chat_files(services, request).forget(caller.tenant_id, stored)
        raise
    task = await services.served.warn(task)
    links = services.files.link_maker(caller.tenant_id, str(request.base_url))
    response = sse.event_stream(
        chat_sse(
            services.hub,
            chats,
            chat,
            turn,
            services.settings.sse_heartbeat,
            warnings=task.warnings,
            file_url=links,
        )
    )
    for warning in task.warnings:
        response.headers.append(WARNING_HEADER, warning)
    return response


@router.get(
    "/v1/chat/{chat_id}/stream",
    response_class=StreamingResponse,
    responses={
        **sse.OPENAPI,
        204: {"description": "No reply is being produced."},
        **responses(422),
    },
)
async def resume_chat(
    chat_id: str, tenant_id: Tenant, services: ServicesDep, request: Request
) -> Response:
    """The AI SDK resume: the chat's running turn from its start, or 204 when no reply is
    being produced (also for a chat this tenant does not have)."""
    check_chat_id(chat_id)
    chats = services.chats
    turn = await chats.latest_turn(tenant_id, chat_id)
    if turn is None or turn.status not in RUNNING:
        return Response(status_code=204)
    chat = Chat(tenant_id, chat_id, "")
    links = services.files.link_maker(tenant_id, str(request.base_url))
    return sse.event_stream(
        chat_sse(services.hub, chats, chat, turn, services.settings.sse_heartbeat, file_url=links)
    )


def chat_files(services: Services, request: Request) -> ChatFiles:
    """The file parts of a chat request: links may point at this request's origin or the
    configured public URL."""
    origins = {origin_of(str(request.base_url))}
    public = services.files.settings.public_url
    if public:
        origins.add(origin_of(public))
    return ChatFiles(services.files, origins)

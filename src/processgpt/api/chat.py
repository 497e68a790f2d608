"""Chat over the API: the WebSocket chat protocol (:mod:`processgpt.protocols.ws_chat`) and the
AI SDK ``useChat`` endpoints, both views of the same chats (:mod:`processgpt.db.chats`).

``WS /v1/agent_ws/{chat_id}/?agent=<name>``
    One connected client per chat (across API processes): a second client is refused before
    the handshake completes (HTTP 403). Authentication: ``Authorization: Bearer …`` /
    ``X-API-Key`` headers, or ``?api_key=`` / ``?token=`` (browsers cannot set headers); a
    bad key, chat id or agent is answered after the handshake with ``ERROR`` and close 1008.
    A ``USER_MESSAGE`` starts a turn (a task of the chat's agent, or the answer to the
    question its latest task asked); a message while a reply streams gets ``ERROR chat_busy``.
    A client that goes away does not stop the task. On connect, a turn whose end no client
    received (still running, or finished while nobody was connected) is replayed from the
    start of the turn.

``POST /v1/chat``, ``GET /v1/chat/{chat_id}/stream``
    The AI SDK transport: the request's last user message is the turn (its ``file`` parts
    become the chat's files, see :mod:`processgpt.api.chat_files`); the reply streams as a
    UI message stream. Resume replays the running turn from its start, or answers 204.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import WebSocket
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from processgpt.api.chat_files import FilePart, file_parts
from processgpt.api.streams import event_frames
from processgpt.db.chats import Chat, ChatClientLocks, ChatRepository, Turn
from processgpt.db.hub import TERMINAL, EventHub
from processgpt.db.workers import ServedAgents
from processgpt.domain.errors import ChatBusy, InvalidInput, MalformedMessage, ProcessGPTError
from processgpt.domain.events import Event
from processgpt.domain.task import TaskStatus
from processgpt.protocols import ai_sdk
from processgpt.protocols.ws_chat import (
    ClientMessage,
    MsgError,
    MsgEventCustomUpdate,
    MsgGracefulDisconnect,
    MsgStatus,
    ServerMessageUnion,
    TurnEncoder,
)

log = logging.getLogger(__name__)

TURN_ENDS = TERMINAL | {TaskStatus.INPUT_REQUIRED}
"""A turn ends when its task ends or waits for the user's answer."""
RUNNING = frozenset({TaskStatus.PENDING, TaskStatus.IN_PROGRESS})
"""A turn whose task is in one of these still streams (the AI SDK resume)."""
_SEND_ERRORS = (WebSocketDisconnect, RuntimeError, OSError)


class ChatSession:
    """One connected client of one chat. Owns the task streaming the current turn."""

    def __init__(
        self,
        ws: WebSocket,
        chat: Chat,
        chats: ChatRepository,
        hub: EventHub,
        heartbeat: float,
        *,
        served: ServedAgents,
        file_url: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> None:
        self.ws = ws
        self.file_url = file_url
        self.chat = chat
        self.chats = chats
        self.hub = hub
        self.heartbeat = heartbeat
        self.served = served
        self._send_lock = asyncio.Lock()
        self._turn: asyncio.Task[None] | None = None
        self._ending = False  # the current turn's last messages are being sent

    async def send(self, message: ServerMessageUnion) -> bool:
        """Send one message; False when the socket is gone (never raises for that)."""
        async with self._send_lock:
            if self.ws.application_state is not WebSocketState.CONNECTED:
                return False
            try:
                await self.ws.send_text(message.model_dump_json())
            except _SEND_ERRORS:
                return False
            return True

    @property
    def streaming(self) -> bool:
        return self._turn is not None and not self._turn.done() and not self._ending

    async def serve(self, lost: asyncio.Event) -> None:
        """Until the client leaves, the lock is lost or :meth:`go_away` closes the socket."""
        watcher = asyncio.create_task(self._watch(lost), name="chat-lock-watch")
        try:
            await self.send(MsgStatus())
            latest = await self.chats.latest_turn(self.chat.tenant_id, self.chat.id)
            if latest is not None and not latest.delivered:
                self._start(latest)
            await self._read()
        finally:
            watcher.cancel()
            await self._stop_turn()
            await asyncio.gather(watcher, return_exceptions=True)

    async def go_away(self, code: int = 1001) -> None:
        """The server is leaving: stop streaming, say so, close."""
        await self._stop_turn()
        await self.send(MsgGracefulDisconnect())
        async with self._send_lock:
            if self.ws.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(*_SEND_ERRORS):
                    await self.ws.close(code=code)

    async def _watch(self, lost: asyncio.Event) -> None:
        await lost.wait()
        log.warning("chat lock connection lost; closing chat socket")
        await self.go_away(code=1012)

    async def _stop_turn(self) -> None:
        if self._turn is not None:
            self._turn.cancel()
            await asyncio.gather(self._turn, return_exceptions=True)
            self._turn = None

    async def _read(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except _SEND_ERRORS:
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                await self.send(
                    MsgError(code=MalformedMessage.code, details="send JSON text frames")
                )
                continue
            await self._on_message(raw)

    async def _on_message(self, raw: str) -> None:
        try:
            msg = ClientMessage.validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            details = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
            await self.send(MsgError(code=MalformedMessage.code, details=details[:500]))
            return
        if self.streaming:
            await self.send(
                MsgError(code=ChatBusy.code, details="a reply is still streaming on this chat")
            )
            return
        if self._turn is not None:  # the ended turn's bookkeeping (END sent, delivery noted)
            await asyncio.gather(self._turn, return_exceptions=True)
        try:
            turn, task = await self.chats.start_turn(self.chat, msg.text, msg.attachments)
        except ProcessGPTError as exc:
            await self.send(MsgError(code=exc.code, details=exc.message))
            return
        except Exception as exc:  # the socket stays usable; the cause is logged, not sent
            log.error("chat turn not started error=%s", type(exc).__name__, exc_info=exc)
            await self.send(MsgError(code="internal_error", details="internal error"))
            return
        task = await self.served.warn(task)
        if task.warnings:  # before the turn's stream: the client reads it first
            await self.send(warning_message(task.warnings))
        self._start(turn)

    def _start(self, turn: Turn) -> None:
        self._ending = False
        self._turn = asyncio.create_task(self._stream(turn), name=f"chat-turn-{turn.task_id}")

    async def _stream(self, turn: Turn) -> None:
        encoder = TurnEncoder(file_url=self.file_url)
        tenant_id = self.chat.tenant_id
        try:
            async for item in self.hub.follow(
                tenant_id,
                turn.task_id,
                after=turn.after_seq,
                until=TURN_ENDS,
                idle_timeout=self.heartbeat,
            ):
                if item is None:
                    continue
                # From the turn's last messages on, the client may send the next message.
                self._ending = not isinstance(item, Event)
                messages = encoder.encode(item) if isinstance(item, Event) else encoder.finish(item)
                for message in messages:
                    if not await self.send(message):
                        return
                if not isinstance(item, Event):
                    await self.chats.mark_delivered(tenant_id, self.chat.id, turn.turn)
        except asyncio.CancelledError:
            raise
        except ProcessGPTError as exc:
            await self.send(MsgError(code=exc.code, details=exc.message))
        except Exception as exc:  # reported to the client, logged here
            log.error("chat turn stream failed error=%s", type(exc).__name__, exc_info=exc)
            await self.send(MsgError(code="internal_error", details="internal error"))


class ChatSockets:
    """The open chat sockets of this API process (``Services.chat_sockets``), so that a
    shutting-down server can tell each client (``GRACEFUL_DISCONNECT``) before it closes."""

    def __init__(self, locks: ChatClientLocks) -> None:
        self.locks = locks
        self.sessions: set[ChatSession] = set()
        self.closing = False

    async def shutdown(self, grace: float = 2.0) -> None:
        """Refuse new sockets, send ``GRACEFUL_DISCONNECT`` to every open one and close it,
        then release the chat locks. Safe to call more than once."""
        self.closing = True
        sessions = list(self.sessions)
        if sessions:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(s.go_away() for s in sessions), return_exceptions=True),
                    grace,
                )
        await self.locks.close()


class ChatRequest(BaseModel):
    """The AI SDK ``useChat`` request body (``DefaultChatTransport``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "id": "support-42",
                    "agent": "demo",
                    "messages": [
                        {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
                    ],
                }
            ]
        },
    )

    id: str = Field(max_length=128)
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)
    agent: str | None = None


def last_user_message(messages: list[dict[str, Any]]) -> tuple[str, list[FilePart]]:
    """The text and file parts of the last user message (UIMessage parts, or ``content``)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        parts = message.get("parts")
        if isinstance(parts, list):
            texts = [
                str(p.get("text", ""))
                for p in parts
                if isinstance(p, dict) and p.get("type") == "text"
            ]
            return "".join(texts), file_parts(parts)
        content = message.get("content")
        return (content if isinstance(content, str) else ""), []
    raise InvalidInput("the request has no user message", field="messages")


def warning_message(warnings: list[str]) -> MsgEventCustomUpdate:
    """The WebSocket message that tells a chat client its turn's task has warnings (seed 002
    has no warning message: a custom update, ``event_type`` ``warning``)."""
    return MsgEventCustomUpdate(payload={"event_type": "warning", "data": {"warnings": warnings}})


async def chat_sse(
    hub: EventHub,
    chats: ChatRepository,
    chat: Chat,
    turn: Turn,
    heartbeat: float,
    *,
    warnings: list[str] | None = None,
    file_url: Callable[[dict[str, Any]], str | None] | None = None,
) -> AsyncIterator[str]:
    """One turn as a UI message stream, from the start of the turn to its end; ``warnings``
    (the turn's task's) follow the start as a transient ``data-warnings`` part; ``file_url``
    makes the signed links of the files the agent sends."""
    message_id = str(turn.task_id) if turn.after_seq == 0 else f"{turn.task_id}:{turn.after_seq}"
    stream = ai_sdk.UIMessageStream(message_id=message_id, file_url=file_url)
    for part in stream.start():
        yield ai_sdk.frame(part)
    if warnings:
        yield ai_sdk.frame({"type": "data-warnings", "data": warnings, "transient": True})
    async for item in hub.follow(
        chat.tenant_id, turn.task_id, after=turn.after_seq, until=TURN_ENDS, idle_timeout=heartbeat
    ):
        if item is None:
            yield ai_sdk.HEARTBEAT
        elif isinstance(item, Event):
            for text in event_frames(stream, item):
                yield text
        else:
            for part in stream.finish(item):
                yield ai_sdk.frame(part)
            yield ai_sdk.DONE
            await chats.mark_delivered(chat.tenant_id, chat.id, turn.turn)


async def refuse_after_accept(ws: WebSocket, message: ServerMessageUnion, code: int = 1008) -> None:
    """Accept, say why, close: the client reads the code instead of a bare HTTP status."""
    with contextlib.suppress(*_SEND_ERRORS):
        await ws.accept()
        await ws.send_text(message.model_dump_json())
        await ws.close(code=code)

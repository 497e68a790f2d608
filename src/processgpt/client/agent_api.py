"""A Python client of the WebSocket chat (``/v1/agent_ws/{chat_id}/``), shaped like the
Lambda Agent API SDK: ``AgentApi(agent_id, base_url, chat_id=…)``, ``connect()``,
``send_message(text, attachments)`` (an async iterator of typed events), ``close()``.

::

    api = AgentApi("demo", "http://localhost:8000/", chat_id="support-42", api_key=key)
    await api.connect()                       # AgentBusyException: another client has the chat
    try:
        async for event in api.send_message("Hello"):
            if isinstance(event, MsgEventTextChunk):
                print(event.text, end="")
    finally:
        await api.close()

Events that arrive while no ``send_message`` is being iterated (a reply replayed after a
reconnect, for instance) go to ``callback``. One request at a time per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlencode, urljoin

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from processgpt.protocols.ws_chat import (
    TURN_ENDING_ERRORS,
    AgentEventUnion,
    MsgError,
    MsgEventCustomUpdate,
    MsgEventEnd,
    MsgEventSendFile,
    MsgEventTextChunk,
    MsgEventToolCallChunk,
    MsgEventToolResult,
    MsgGracefulDisconnect,
    MsgStatus,
    MsgUserMessage,
    ServerMessage,
    ServerMessageUnion,
)

__all__ = [
    "AgentApi",
    "AgentBusyException",
    "AgentException",
    "MsgError",
    "MsgEventCustomUpdate",
    "MsgEventEnd",
    "MsgEventSendFile",
    "MsgEventTextChunk",
    "MsgEventToolCallChunk",
    "MsgEventToolResult",
    "MsgGracefulDisconnect",
    "MsgStatus",
    "MsgUserMessage",
    "ServerMessage",
]

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
"""Events buffered for a request; when full, reading the socket waits for the consumer."""
_AGENT_EVENTS = (
    MsgEventTextChunk,
    MsgEventToolCallChunk,
    MsgEventToolResult,
    MsgEventCustomUpdate,
    MsgEventSendFile,
    MsgEventEnd,
)


class AgentException(Exception):
    """A protocol or server error: ``code`` (a stable error code) and ``details``."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


class AgentBusyException(AgentException):
    """The chat has another connected client, or this client's request is still streaming."""

    def __init__(self, details: str) -> None:
        super().__init__("chat_busy", details)


_Item = AgentEventUnion | MsgError | AgentException


def _ws_base(base_url: str) -> str:
    if base_url.startswith("https://"):
        return "wss://" + base_url.removeprefix("https://")
    if base_url.startswith("http://"):
        return "ws://" + base_url.removeprefix("http://")
    return base_url


class AgentApi:
    """One connection to one chat of agent ``agent_id`` (an agent orchestrator name)."""

    def __init__(
        self,
        agent_id: str,
        base_url: str,
        *,
        callback: Callable[[ServerMessageUnion], None] | None = None,
        on_disconnect: Callable[[AgentApi], None] | None = None,
        chat_id: int | str = 0,
        api_key: str | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self.id = agent_id
        self.chat_id = chat_id
        endpoint = urljoin(_ws_base(base_url), f"v1/agent_ws/{chat_id}/")
        self.url = f"{endpoint}?{urlencode({'agent': agent_id})}"
        self.callback = callback
        self.on_disconnect = on_disconnect
        self._api_key = api_key
        self.open_timeout = open_timeout
        self._ws: ClientConnection | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._request_lock = asyncio.Lock()
        self._current_queue: asyncio.Queue[_Item] | None = None
        self._connected = False
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        """Open the connection and wait for the server's ``STATUS``.

        :raise AgentBusyException: the chat is in use by another client.
        :raise AgentException: anything else (``unauthorized``, ``unknown_agent``,
            ``CONNECTION_ERROR``, ``TIMEOUT``, …); ``code`` and ``details`` say what.
        """
        timeout = self.open_timeout
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else None
        try:
            ws = await connect(self.url, additional_headers=headers, open_timeout=timeout)
        except InvalidStatus as exc:
            if exc.response.status_code == 403:
                raise AgentBusyException(
                    f"chat {self.chat_id} is already in use by another client"
                ) from None
            raise AgentException(
                "CONNECTION_ERROR", f"handshake refused with HTTP {exc.response.status_code}"
            ) from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise AgentException("CONNECTION_ERROR", f"cannot connect: {exc}") from None
        try:
            first = ServerMessage.validate_json(await asyncio.wait_for(ws.recv(), timeout))
        except TimeoutError:
            await ws.close()
            raise AgentException("TIMEOUT", "the server sent no STATUS in time") from None
        except ConnectionClosed:
            raise AgentException("CONNECTION_ERROR", "the server closed the connection") from None
        except ValidationError as exc:
            await ws.close()
            raise AgentException("PARSE_ERROR", f"unexpected first message: {exc}") from None
        if not isinstance(first, MsgStatus):
            await ws.close()
            if isinstance(first, MsgError):
                if first.code == "chat_busy":
                    raise AgentBusyException(first.details)
                raise AgentException(first.code, first.details)
            raise AgentException("INVALID_STATUS", f"expected STATUS, got {first.type}")
        self._ws = ws
        self._connected = True
        self._closing = False
        self._listen_task = asyncio.create_task(self._listen(ws), name=f"agent-api-{self.id}")
        log.info("agent connected agent=%s chat=%s", self.id, self.chat_id)

    async def close(self) -> None:
        """Close the connection (the chat's running task is not stopped)."""
        self._closing = True
        self._connected = False
        if self._ws is not None:
            await self._ws.close()
        if self._listen_task is not None:
            self._listen_task.cancel()
            await asyncio.gather(self._listen_task, return_exceptions=True)
            self._listen_task = None

    async def send_message(
        self, text: str, attachments: list[str] | None = None
    ) -> AsyncIterator[AgentEventUnion]:
        """Send a message and iterate the reply's events, ``MsgEventEnd`` last.

        :raise AgentBusyException: a request of this client is still streaming, or the
            server says the chat is busy.
        :raise AgentException: the server's ``ERROR`` (for ``agent_failed`` after the turn's
            events, once ``MsgEventEnd`` arrived), or the connection was lost.
        """
        if not self._connected or self._ws is None:
            raise AgentException("NOT_CONNECTED", "not connected; call connect() first")
        if self._request_lock.locked():
            raise AgentBusyException("this client is processing another request")
        async with self._request_lock:
            queue: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_SIZE)
            self._current_queue = queue
            try:
                message = MsgUserMessage(text=text, attachments=attachments or [])
                try:
                    await self._ws.send(message.model_dump_json())
                except ConnectionClosed:
                    raise AgentException("DISCONNECTED", "the connection is closed") from None
                failure: AgentException | None = None
                while True:
                    item = await queue.get()
                    if isinstance(item, AgentException):
                        raise item
                    if isinstance(item, MsgError):
                        error = (
                            AgentBusyException(item.details)
                            if item.code == "chat_busy"
                            else AgentException(item.code, item.details)
                        )
                        if item.code not in TURN_ENDING_ERRORS:
                            raise error
                        failure = error
                        continue
                    yield item
                    if isinstance(item, MsgEventEnd):
                        if failure is not None:
                            raise failure
                        return
            finally:
                self._current_queue = None
                self._drain(queue)

    def _drain(self, queue: asyncio.Queue[_Item]) -> None:
        """Hand what a request left unread to ``callback``."""
        while not queue.empty():
            item = queue.get_nowait()
            if self.callback is not None and not isinstance(item, AgentException):
                self.callback(item)

    async def _deliver(self, item: _Item) -> None:
        queue = self._current_queue
        if queue is not None:
            await queue.put(item)  # bounded: a slow consumer slows the reading of the socket
        elif self.callback is not None and not isinstance(item, AgentException):
            self.callback(item)

    async def _listen(self, ws: ClientConnection) -> None:
        reason = AgentException("DISCONNECTED", "the connection was closed")
        try:
            async for raw in ws:
                try:
                    message = ServerMessage.validate_json(raw)
                except ValidationError as exc:
                    log.error("cannot parse server message agent=%s", self.id)
                    await self._deliver(AgentException("PARSE_ERROR", str(exc)))
                    continue
                if isinstance(message, _AGENT_EVENTS):
                    await self._deliver(message)
                elif isinstance(message, MsgError):
                    if self.callback is not None and self._current_queue is not None:
                        self.callback(message)
                    await self._deliver(message)
                elif isinstance(message, MsgGracefulDisconnect):
                    if self.callback is not None:
                        self.callback(message)
                    reason = AgentException("GRACEFUL_DISCONNECT", "the server is going away")
                    break
                elif self.callback is not None:
                    self.callback(message)
        except ConnectionClosed:
            pass
        finally:
            await self._closed(ws, reason)

    async def _closed(self, ws: ClientConnection, reason: AgentException) -> None:
        """The connection ended: fail the running request, tell ``on_disconnect``."""
        self._connected = False
        queue = self._current_queue
        if queue is not None:
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(reason)
        if self._closing:
            return
        with contextlib.suppress(ConnectionClosed):
            await ws.close()
        if self.on_disconnect is not None:
            try:
                self.on_disconnect(self)
            except Exception:
                log.exception("on_disconnect callback failed agent=%s", self.id)

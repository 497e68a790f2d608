"""ASGI middleware of the API: request body limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from processgpt.api.errors import error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413 ``payload_too_large`` before they
    reach a route, whether announced by ``Content-Length`` or sent chunked: the body is read
    here (at most ``limit`` bytes are held) and handed on whole."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        exempt: frozenset[str] = frozenset(),
        larger: Mapping[str, int] | None = None,
    ) -> None:
        """``exempt``: paths whose POST bodies are passed on unread (their routes stream
        them and apply limits of their own). ``larger``: paths with a limit of their own
        (bodies that carry files inline)."""
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            scope.get("method") == "POST" and scope.get("path") in self.exempt
        ):
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.limit)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                first: Message | None = message
                break
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed and first is not None:
                replayed = True
                return first
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(
            "payload_too_large", f"request bodies are limited to {limit} bytes", 413
        )
        await response(scope, receive, send)

"""Requests in flight end when their credential stops being valid.

A request is authenticated once, when it starts, and an SSE stream, a WebSocket chat or an
A2A stream can then run for hours. :class:`CredentialWatch` keeps the requests in flight per
credential and ends them when it is no longer valid:

* an API key revoked with ``processgpt keys revoke``: the revocation's NOTIFY names the key's
  prefix; every key in use with that prefix is looked up again (so another tenant's key with
  the same prefix ends nothing), and again for all keys in use after the LISTEN connection
  was lost, since revocations may have been missed meanwhile;
* a JWT, at its ``exp``.

An HTTP response that has started ends there (a client that resumes gets 401); one that has
not is answered 401; a WebSocket is closed with 1008 (policy violation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import jwt

from processgpt.api.auth import Authenticator, bearer_token
from processgpt.api.errors import error_response
from processgpt.db.api_keys import KEY_PREFIX
from processgpt.domain.errors import Unauthorized

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ENDED = "the API key or token is no longer valid"
_STARTED = frozenset({"http.response.start", "websocket.accept", "websocket.close"})


@dataclass(eq=False, slots=True)
class _Request:
    task: asyncio.Task[Any]
    ended: bool = False

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.task.cancel()


class CredentialWatch:
    """The API keys and tokens of the requests in flight, and what ends those requests."""

    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth
        self._by_key: dict[str, set[_Request]] = {}
        self._checks: dict[str, asyncio.Task[None]] = {}  # key -> its re-check under way
        self._stale: set[str] = set()  # keys to look up (again) once their check is done

    @property
    def watched(self) -> int:
        """Requests in flight with an API key."""
        return sum(len(requests) for requests in self._by_key.values())

    def key_revoked(self, prefix: str) -> None:
        """A key with this prefix was revoked (by some tenant): look up the keys in use that
        carry it."""
        start = f"{KEY_PREFIX}{prefix}_"
        for key in [k for k in self._by_key if k.startswith(start)]:
            self._recheck(key)

    def recheck_all(self) -> None:
        """Revocations may have been missed (the LISTEN connection was lost): look up every
        key in use."""
        for key in list(self._by_key):
            self._recheck(key)

    async def aclose(self) -> None:
        checks = list(self._checks.values())
        for check in checks:
            check.cancel()
        await asyncio.gather(*checks, return_exceptions=True)

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run ``app`` for one request, ended early if its credential stops being valid."""
        token = _token(scope) if scope["type"] in ("http", "websocket") else None
        task = asyncio.current_task()
        if token is None or task is None:
            await app(scope, receive, send)
            return
        request = _Request(task)
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] in _STARTED
            await send(message)

        timer = self._watch(token, request)
        try:
            await app(scope, receive, watched_send)
        except asyncio.CancelledError:
            if not request.ended:
                raise
            task.uncancel()
            await _close(scope, send, started=started)
        finally:
            if timer is not None:
                timer.cancel()
            requests = self._by_key.get(token)
            if requests is not None:
                requests.discard(request)
                if not requests:
                    del self._by_key[token]

    def _watch(self, token: str, request: _Request) -> asyncio.TimerHandle | None:
        if token.startswith(KEY_PREFIX):
            self._by_key.setdefault(token, set()).add(request)
            return None
        expires = _expiry(token)
        if expires is None:  # not a token this API accepts: the request is refused anyway
            return None
        return asyncio.get_running_loop().call_later(max(0.0, expires - time.time()), request.end)

    def _recheck(self, key: str) -> None:
        self._stale.add(key)
        check = self._checks.get(key)
        if check is None or check.done():
            check = asyncio.create_task(self._check(key), name="credential-check")
            self._checks[key] = check
            check.add_done_callback(lambda done: self._check_done(key, done))

    def _check_done(self, key: str, check: asyncio.Task[None]) -> None:
        if self._checks.get(key) is check:
            del self._checks[key]

    async def _check(self, key: str) -> None:
        # A lookup begun before a revocation may still see the key valid: while new
        # notifications arrive for the key, it is looked up again.
        while key in self._stale and key in self._by_key:
            self._stale.discard(key)
            try:
                await self._auth.tenant_for(None, key)
            except Unauthorized:
                ended = self._by_key.get(key, set())
                log.info(
                    "ending requests of a revoked key prefix=%s requests=%d",
                    key[len(KEY_PREFIX) :].split("_", 1)[0],
                    len(ended),
                )
                for request in list(ended):
                    request.end()
                return
            except Exception as exc:  # noqa: BLE001 - checked again when the listener reconnects
                log.warning("could not look up a key in use error=%s", type(exc).__name__)
                return
        self._stale.discard(key)


class WatchCredentials:
    """ASGI middleware: every request runs under :meth:`CredentialWatch.serve`."""

    def __init__(self, app: ASGIApp, watch: CredentialWatch) -> None:
        self.app = app
        self.watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.watch.serve(self.app, scope, receive, send)


def _token(scope: Scope) -> str | None:
    """The request's API key or token, taken as the API takes it (the WebSocket chat also
    reads ``api_key`` or ``token`` from the query string, ahead of ``Authorization``)."""
    headers = {k: v for k, v in scope.get("headers", ()) if k in (b"authorization", b"x-api-key")}
    api_key = headers[b"x-api-key"].decode("latin-1") if b"x-api-key" in headers else None
    if api_key is None and scope["type"] == "websocket":
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        api_key = next((query[name][0] for name in ("api_key", "token") if name in query), None)
    authorization = headers.get(b"authorization")
    return bearer_token(authorization.decode("latin-1") if authorization else None, api_key)


def _expiry(token: str) -> float | None:
    """A JWT's ``exp`` (its signature is checked where the request is authenticated)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


async def _close(scope: Scope, send: Send, *, started: bool) -> None:
    """End a request whose credential stopped being valid (the client may be gone already)."""
    with contextlib.suppress(OSError, RuntimeError):
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": Unauthorized.code})
        elif started:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            response = error_response(Unauthorized.code, _ENDED)
            await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}

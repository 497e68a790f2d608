"""Streams end when their credential stops being valid.

A request is authenticated once, when it starts, and an SSE stream, a WebSocket chat or an
A2A stream can then run for hours. :class:`CredentialWatch` keeps the requests in flight by
the credential they were let in with (the :class:`~processgpt.api.auth.Authenticator`
reports it, so what is watched is exactly what was accepted) and ends them when it is no
longer valid:

* an API key revoked with ``processgpt keys revoke``: the revocation's NOTIFY names the key's
  prefix; every key in use with that prefix is looked up again (so another tenant's key with
  the same prefix ends nothing), and every key in use after the LISTEN connection was lost,
  since revocations may have been missed meanwhile;
* a JWT, at its ``exp``.

Only a request that is streaming is cut off: an HTTP response that has sent part of its
body (it simply ends; a client that resumes gets 401) or an accepted WebSocket (closed with
1008). A request whose credential is revoked before that point ends as soon as it gets
there, so an ordinary request is never interrupted halfway through its work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import jwt

from processgpt.api.auth import CREDENTIAL_SCOPE_KEY, Authenticator
from processgpt.db.api_keys import KEY_PREFIX
from processgpt.domain.errors import Unauthorized

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_RECANCEL_SECONDS = 1.0
"""A cancellation can be swallowed (``asyncio.wait_for`` on Python 3.11): it is repeated this
often until the request is over."""
_MAX_CANCELS = 10
"""Cancellations requested before giving up on a request that ignores them."""
_CLOSE_SECONDS = 5.0
"""How long ending a response may wait for a client that does not read."""
_LOOKUPS_AT_ONCE = 4
"""Key lookups run at once after a reconnect (the rest wait; requests need the pool too)."""


class _Request:
    """One request in flight with a credential."""

    __slots__ = ("cancels", "done", "keys", "revoked", "streaming", "task", "timers", "watch")

    def __init__(self, watch: CredentialWatch, task: asyncio.Task[Any]) -> None:
        self.watch = watch
        self.task = task
        self.revoked = False  # its credential is no longer valid
        self.streaming = False  # part of its body was sent, or its WebSocket accepted
        self.done = False
        self.cancels = 0  # cancellations this watch requested
        self.keys: set[str] = set()  # the API keys it is watched under
        self.timers: list[asyncio.TimerHandle] = []

    def authenticated(self, token: str) -> None:
        """The request was let in with ``token``: watch it."""
        self.watch.add(token, self)

    def end(self) -> None:
        """The credential is no longer valid: cut the request off once it is streaming."""
        self.revoked = True
        if self.streaming:
            self._cancel()

    def sent(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept" or (
            kind == "http.response.body" and message.get("more_body")
        ):
            self.streaming = True
            if self.revoked:
                self._cancel()

    def _cancel(self) -> None:
        if self.done:
            return
        if self.cancels >= _MAX_CANCELS:
            log.warning("a request with a revoked credential ignores cancellation")
            return
        self.cancels += 1
        self.task.cancel()
        loop = self.task.get_loop()
        self.timers.append(loop.call_later(_RECANCEL_SECONDS, self._cancel))

    def finish(self) -> None:
        """The request is over (or being closed): no more cancellations."""
        self.done = True
        for timer in self.timers:
            timer.cancel()


class CredentialWatch:
    """The credentials of the requests in flight, and what ends those requests."""

    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth
        self._by_key: dict[str, set[_Request]] = {}
        self._checks: dict[str, asyncio.Task[None]] = {}  # key -> its lookup under way
        self._stale: set[str] = set()  # keys to look up (again) once their lookup is done
        self._lookups = asyncio.Semaphore(_LOOKUPS_AT_ONCE)

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
        """Run ``app`` for one request, cut off if its credential stops being valid."""
        task = asyncio.current_task()
        if scope["type"] not in ("http", "websocket") or task is None:
            await app(scope, receive, send)
            return
        request = _Request(self, task)
        scope[CREDENTIAL_SCOPE_KEY] = request.authenticated

        async def watched_send(message: Message) -> None:
            await send(message)
            request.sent(message)

        try:
            await app(scope, receive, watched_send)
        except asyncio.CancelledError:
            request.finish()
            # Our own cancellations are taken back; one from anybody else goes on.
            if not request.cancels or _uncancel(task, request.cancels) > 0:
                raise
            await _close(scope, send)
        finally:
            request.finish()
            for key in request.keys:
                requests = self._by_key.get(key)
                if requests is not None:
                    requests.discard(request)
                    if not requests:
                        del self._by_key[key]

    def add(self, token: str, request: _Request) -> None:
        """Watch ``request`` under the credential it was let in with."""
        if token.startswith(KEY_PREFIX):
            self._by_key.setdefault(token, set()).add(request)
            request.keys.add(token)
            return
        expires = _expiry(token)
        if expires is not None:
            loop = request.task.get_loop()
            request.timers.append(loop.call_later(max(0.0, expires - time.time()), request.end))

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
        """Look ``key`` up until a lookup begun after its last notification says whether it
        is still valid (a lookup that fails is tried again while the key is in use)."""
        delay = 0.2
        try:
            while key in self._stale and key in self._by_key:
                self._stale.discard(key)
                try:
                    async with self._lookups:
                        await self._auth.authenticate(key)
                except Unauthorized:
                    self._end_key(key)
                    return
                except Exception as exc:  # noqa: BLE001 - tried again below
                    log.warning("could not look up a key in use error=%s", type(exc).__name__)
                    self._stale.add(key)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            self._stale.discard(key)

    def _end_key(self, key: str) -> None:
        requests = self._by_key.get(key, set())
        prefix = key[len(KEY_PREFIX) :].split("_", 1)[0]
        log.info("ending requests of a revoked key prefix=%s requests=%d", prefix, len(requests))
        for request in list(requests):
            request.end()


class WatchCredentials:
    """ASGI middleware: every request runs under :meth:`CredentialWatch.serve`."""

    def __init__(self, app: ASGIApp, watch: CredentialWatch) -> None:
        self.app = app
        self.watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.watch.serve(self.app, scope, receive, send)


def _uncancel(task: asyncio.Task[Any], times: int) -> int:
    """Take back ``times`` cancellation requests; how many others remain."""
    remaining = task.cancelling()
    for _ in range(times):
        remaining = task.uncancel()
    return remaining


def _expiry(token: str) -> float | None:
    """A JWT's ``exp`` (its signature was checked when the request was let in)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


async def _close(scope: Scope, send: Send) -> None:
    """End a streaming request whose credential is no longer valid (the client may be gone
    already, or not reading)."""
    with contextlib.suppress(OSError, RuntimeError, TimeoutError):
        async with asyncio.timeout(_CLOSE_SECONDS):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": Unauthorized.code})
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})

"""The HTTP side every part of the client shares: the connection, error answers as
:class:`ApiError`, and streams that resume by themselves (:class:`ReconnectPolicy`).

:class:`ApiTransport` is the base of the resource clients (:mod:`.task_api`,
:mod:`.process_api`); :class:`processgpt.client.ProcessGPTClient` combines them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import httpx

from processgpt.protocols.sse import SSEDecoder, SSEFrame, StreamPart

log = logging.getLogger("processgpt.client.http")

TaskId = uuid.UUID | str
"""A task's or process instance's id, as a UUID or its text."""


class ApiError(Exception):
    """The API answered with an error. ``code`` is the stable error code of the body
    (``{"error": {"code", "message", "details"?}}``); ``retry_after`` is set for 429;
    ``details`` holds the structured problems when the error has them (e.g.
    ``definition_invalid``: ``[{"id", "problem"}]``)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.details = details


class StreamBroken(ApiError):
    """A stream could not be resumed within the reconnect policy's attempts."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "stream_broken", message)


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a stream reconnects after a dropped connection: up to ``max_retries`` attempts in a
    row without receiving anything (the count restarts whenever a frame arrives), waiting
    ``base_delay·2^(n-1)`` seconds (capped at ``max_delay``, with jitter) before attempt n.
    ``read_timeout`` is how long a connection may stay silent (the server sends heartbeats
    every 15 s by default) before it counts as dropped."""

    max_retries: int = 5
    base_delay: float = 0.1
    max_delay: float = 5.0
    read_timeout: float = 60.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempt - 1))
        return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter


_RETRYABLE_STATUS = frozenset({502, 503, 504})


def error_of(response: httpx.Response) -> ApiError:
    """The error of a read response (its body is ``{"error": {"code", "message"}}``)."""
    code, message = "http_error", response.reason_phrase
    details: list[dict[str, Any]] | None = None
    try:
        payload = response.json()
        err = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code", code))
            message = str(err.get("message", message))
            found = err.get("details")
            if isinstance(found, list):
                details = [d for d in found if isinstance(d, dict)]
    except ValueError:
        pass
    retry_after: float | None = None
    header = response.headers.get("retry-after")
    if header is not None:
        try:
            retry_after = float(header)
        except ValueError:
            retry_after = None
    return ApiError(response.status_code, code, message, retry_after=retry_after, details=details)


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class FrameCursor(Protocol):
    """Where a resumable stream is: ``connect()`` gives the ``Last-Event-ID`` of the next
    connection (None: from the start); ``accept(frame)`` records a frame and returns its part
    for the reader (None: nothing new for the reader)."""

    def connect(self) -> str | None: ...

    def accept(self, frame: SSEFrame) -> StreamPart | None: ...


class ApiTransport:
    """A connection to one API with one key. Use as an async context manager (or call
    :meth:`aclose`). ``transport`` replaces httpx's (tests, proxies). ``timeout``: seconds
    per request, or an ``httpx.Timeout`` (e.g. a short ``connect`` so that an API that is not
    running is an error at once: ``httpx.ConnectError``, or ``ConnectTimeout``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 30.0,
        reconnect: ReconnectPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.reconnect = reconnect or ReconnectPolicy()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", **(headers or {})},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        response = await self._http.request(method, path, json=json, params=params, headers=headers)
        if response.status_code >= 400:
            raise error_of(response)
        return response

    async def _resumable(
        self,
        path: str,
        cursor: FrameCursor,
    ) -> AsyncIterator[StreamPart]:
        """The parts of the SSE stream at ``path``, reconnecting after dropped connections
        (with ``cursor.connect()`` as ``Last-Event-ID``) until ``[DONE]``; an error answer
        that is not 502/503/504 raises :class:`ApiError`, too many failed reconnects
        :class:`StreamBroken`."""
        failures = 0
        timeout = httpx.Timeout(self._http.timeout.connect, read=self.reconnect.read_timeout)
        while True:
            last_event_id = cursor.connect()
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            progressed = False
            try:
                async with self._http.stream(
                    "GET", path, headers=headers, timeout=timeout
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        if response.status_code not in _RETRYABLE_STATUS:
                            raise error_of(response)
                        raise httpx.RemoteProtocolError(f"status {response.status_code}")
                    decoder = SSEDecoder()
                    async for chunk in response.aiter_bytes():
                        for frame in decoder.feed(chunk):
                            progressed = True
                            if frame.done:
                                return
                            part = cursor.accept(frame)
                            if part is not None:
                                yield part
                        if decoder.comments:
                            progressed = True  # heartbeats: the connection is alive
                raise httpx.RemoteProtocolError("the stream ended before [DONE]")
            except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                failures = 1 if progressed else failures + 1
                if failures > self.reconnect.max_retries:
                    raise StreamBroken(
                        f"{path}: gave up after {failures - 1} reconnects ({exc!r})"
                    ) from exc
                delay = self.reconnect.delay(failures)
                log.info(
                    "stream dropped, reconnecting path=%s last_event_id=%s attempt=%d error=%s",
                    path,
                    last_event_id,
                    failures,
                    type(exc).__name__,
                )
                await asyncio.sleep(delay)

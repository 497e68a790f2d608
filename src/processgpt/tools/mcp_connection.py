"""One live MCP client session (a stdio server process, or a streamable HTTP session), held
open by a background task that :class:`~processgpt.tools.mcp.McpConnections` owns (anyio
requires a session to be entered and left in the same task).

A stdio server's stderr goes to a pipe whose lines are logged, scrubbed and bounded
(:mod:`processgpt.tools.mcp_stderr`), not to the worker's own stderr.

Bounds: at most ``connecting`` sessions start at once (a shared semaphore: spawning and the
handshake); an HTTP server's JSON bodies and SSE events are cut off at ``max_message_bytes``
(the connection then fails instead of the worker reading without end).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from processgpt.tools.mcp_config import McpServerConfig
from processgpt.tools.mcp_stderr import ServerStderr
from processgpt.tools.mcp_tools import error_text
from processgpt.tools.netguard import NetworkPolicy, guarded_http_client

if TYPE_CHECKING:  # the mcp package is an optional dependency (the ``llm`` extra)
    import mcp

log = logging.getLogger(__name__)


class McpConnection:
    """A session to one server. The pool reads and sets the bookkeeping fields: ``in_use``
    (calls in flight), ``holders`` (toolsets holding it), ``last_used``, ``retired`` (taken
    out of the pool; closed once its calls are done)."""

    def __init__(
        self,
        server: McpServerConfig,
        *,
        read_timeout: float,
        policy: NetworkPolicy,
        connecting: asyncio.Semaphore,
        max_message_bytes: int,
    ) -> None:
        self.server = server
        self.read_timeout = read_timeout
        self.policy = policy
        self.max_message_bytes = max_message_bytes
        self.client: mcp.Client | None = None
        self.broken = False
        self.retired = False
        self.closing = False
        self.last_used = time.monotonic()
        self.in_use = 0
        self.holders = 0
        self._connecting = connecting
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(self._hold(), name=f"mcp:{server.name}")

    @property
    def idle(self) -> bool:
        """Nobody uses or holds it: it may be closed to make room."""
        return self.in_use == 0 and self.holders == 0

    async def ready(self, within: float) -> mcp.Client:
        await asyncio.wait_for(asyncio.shield(self._ready), within)
        assert self.client is not None
        return self.client

    async def _hold(self) -> None:
        try:
            import mcp  # noqa: PLC0415 - optional dependency

            async with contextlib.AsyncExitStack() as stack:
                async with self._connecting:
                    target, stderr = await self._target(stack)
                    client = mcp.Client(target, read_timeout_seconds=self.read_timeout)
                    try:
                        self.client = await stack.enter_async_context(client)
                    finally:
                        if stderr is not None:
                            stderr.spawned()
                self._ready.set_result(None)
                await self._stop.wait()
        except asyncio.CancelledError:
            self.broken = True
            raise
        except Exception as exc:  # noqa: BLE001 - a dead server must not take the pool down
            self.broken = True
            if not self._ready.done():
                message = error_text(root_cause(exc), self.server)
                self._ready.set_exception(ConnectionError(message))
            else:
                log.warning(
                    "mcp connection ended server=%s error=%s",
                    self.server.describe(),
                    type(root_cause(exc)).__name__,
                )
        finally:
            self.broken = True
            if not self._ready.done():
                self._ready.set_exception(ConnectionError("the connection was closed"))
            # Nobody may be waiting on it; retrieving it keeps asyncio from logging it.
            with contextlib.suppress(BaseException):
                self._ready.exception()

    async def _target(self, stack: contextlib.AsyncExitStack) -> tuple[Any, ServerStderr | None]:
        """The transport to open, and for a stdio server the pipe its stderr goes to."""
        import mcp  # noqa: PLC0415
        from mcp.client.stdio import stdio_client  # noqa: PLC0415
        from mcp.client.streamable_http import streamable_http_client  # noqa: PLC0415

        server = self.server
        if server.command:
            stderr = ServerStderr(server)
            errlog = await stack.enter_async_context(stderr)
            parameters = mcp.StdioServerParameters(
                command=server.command,
                args=list(server.args),
                env=dict(server.env) or None,
                cwd=server.cwd,
            )
            return stdio_client(parameters, errlog=errlog), stderr  # type: ignore[arg-type]
        import httpx2  # noqa: PLC0415 - mcp 2.x's HTTP client

        from processgpt.tools.guarded_http import limited_client  # noqa: PLC0415 - httpx2

        timeout = httpx2.Timeout(30.0, read=max(300.0, self.read_timeout))
        headers = dict(server.headers)
        client = (
            guarded_http_client(
                self.policy,
                headers=headers,
                timeout=timeout,
                max_message_bytes=self.max_message_bytes,
            )
            if server.guarded
            else limited_client(headers=headers, timeout=timeout, max_bytes=self.max_message_bytes)
        )
        http = await stack.enter_async_context(client)
        assert server.url is not None
        transport = streamable_http_client(
            server.url, http_client=http, max_sse_event_size=self.max_message_bytes
        )
        return transport, None

    async def close(self) -> None:
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 5.0)
        except (TimeoutError, Exception):  # noqa: BLE001 - closing is best effort
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


def root_cause(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio wraps transport errors in groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc

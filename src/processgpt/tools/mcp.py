"""MCP tools: a per-process connection pool, and tool calls.

Which servers a task may use is decided by :mod:`processgpt.tools.mcp_config` (the operator's
``mcp.json``, ``PROCESSGPT_MCP_CONFIG``, merged with the tenant's HTTP servers and catalog
references): :meth:`McpConnections.plan` reads it for a task. Transports: stdio (``command``,
only from the operator) and streamable HTTP (``url``); a tenant's URL is reached through the
network guard (:mod:`processgpt.tools.netguard`), every connection checked at connect time.

:class:`McpConnections` keeps one connection per tenant and distinct server configuration
(keyed by a hash of both, :attr:`McpServerConfig.key`, so an edited configuration gets a new
connection on the next task and the old one is closed once idle) and reuses it across that
tenant's tasks; only operator entries marked ``"shared": true`` are shared by tenants. Each
connection lives in a background task the pool owns (:mod:`processgpt.tools.mcp_connection`);
:meth:`McpConnections.close` ends them all (call it on worker shutdown).

Bounds (:class:`~processgpt.config.McpSettings`): at most ``max_connections`` connections in
all and ``max_connections_per_tenant`` per tenant; to open another, the least recently used
connection nobody uses or holds is closed; when there is none, the server is reported
unavailable for this task (the worker does not grow). At most ``max_connecting`` connections
start at once. A server's tool list is cut at ``max_tools``, a tool result at
``max_result_chars``, an HTTP server's message at ``max_message_bytes``.

Contracts:

* Secrets never leave this module in logs, errors or ``repr``: ``env`` and ``headers`` values
  are only handed to the subprocess / HTTP client (stored ones are decrypted here, with the
  keys of :class:`~processgpt.db.secret_box.SecretBox`).
* A server that cannot be reached only removes its tools (reported in
  :attr:`Toolset.unavailable`); a failing or timed-out tool call returns a
  :class:`ToolOutcome` with ``error`` set. Neither raises.
* A connection that fails under one call is taken out of the pool (the next call opens a new
  one) but closed only when the calls in flight on it have ended.
* Tool names the model sees are ``<server>__<tool>``, sanitised to ``^[a-zA-Z0-9_-]{1,64}$``
  and unique within a :class:`Toolset`. A toolset holds its connections until
  :meth:`McpConnections.release`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from processgpt import tracing
from processgpt.config import McpSettings, SecretSettings
from processgpt.db.secret_box import SecretBox
from processgpt.tools.mcp_config import (
    McpServerConfig,
    OperatorConfig,
    ServerPlan,
    plan_for_task,
)
from processgpt.tools.mcp_connection import McpConnection, root_cause
from processgpt.tools.mcp_tools import (
    McpTool,
    ToolOutcome,
    Toolset,
    error_text,
    function_name,
    result_outcome,
)
from processgpt.tools.netguard import NetworkPolicy

__all__ = [
    "McpConnections",
    "McpServerConfig",
    "McpTool",
    "ToolOutcome",
    "Toolset",
    "function_name",
]

log = logging.getLogger(__name__)

_MAX_LIST_PAGES = 20


class PoolFull(Exception):
    """No room for another connection (every one is in use or held)."""


class McpConnections:
    """A per-process pool of MCP connections, shared by all tasks of a worker.

    ``settings``: the operator's file, timeouts, network policy and bounds (default: from
    the environment); ``box``: the keys that open stored secrets (default: from the
    environment or the data directory; a composition root passes the process's one).
    ``connect_timeout``: seconds to start a server and finish the handshake;
    ``call_timeout``: default seconds per tool call (both default to the settings);
    ``idle_timeout``: connections not used for this long are closed (checked whenever tools
    are requested).
    """

    def __init__(
        self,
        settings: McpSettings | None = None,
        *,
        box: SecretBox | None = None,
        connect_timeout: float | None = None,
        call_timeout: float | None = None,
        idle_timeout: float = 600.0,
    ) -> None:
        self.settings = settings or McpSettings()
        if box is None:
            secrets = SecretSettings()
            keys = secrets.keys.get_secret_value() if secrets.keys else None
            box = SecretBox.configured(keys, secrets.data_dir)
        self.box = box
        self.policy = NetworkPolicy.parse(
            self.settings.allow_private_networks, self.settings.allowed_networks
        )
        self.connect_timeout = connect_timeout or self.settings.connect_timeout
        self.call_timeout = call_timeout or self.settings.tool_timeout
        self.idle_timeout = idle_timeout
        self._connections: dict[str, McpConnection] = {}
        self._retired: set[McpConnection] = set()
        """Out of the pool, calls still in flight on them: closed when those end."""
        self._connecting = asyncio.Semaphore(self.settings.max_connecting)
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._connections)

    def plan(self, tenant_id: str, tenant_config: Any) -> ServerPlan:
        """The servers a task of ``tenant_id`` may use: the operator's file (read now) and
        the tenant's configuration as the claim read it (the request context's
        ``tenant_mcp_config``), with the tenant's entries that may not run in
        :attr:`ServerPlan.refused`."""
        return plan_for_task(
            tenant_config,
            tenant_id=tenant_id,
            operator=OperatorConfig.read(self.settings.config),
            box=self.box,
            policy=self.policy,
        )

    async def toolset(self, servers: Sequence[McpServerConfig]) -> Toolset:
        """Connect (or reuse connections) to ``servers`` and list their tools. The toolset
        holds its connections until :meth:`release`."""
        if self._closed:
            raise RuntimeError("the MCP connection pool is closed")
        self._close_idle({s.key for s in servers})
        toolset = Toolset()
        listings = await asyncio.gather(*(self._list(s) for s in servers))
        for server, listing in zip(servers, listings, strict=True):
            if isinstance(listing, str):
                toolset.unavailable[server.name] = listing
                continue
            connection, tools = listing
            connection.holders += 1
            toolset.held.append(connection)
            toolset.add(server, tools)
        return toolset

    def release(self, toolset: Toolset) -> None:
        """Give back the connections ``toolset`` holds (call once the task is done with it;
        they stay open for the next tasks until idle or needed for room)."""
        now = time.monotonic()
        for connection in toolset.held:
            connection.holders -= 1
            connection.last_used = now
        toolset.held.clear()

    async def _list(self, server: McpServerConfig) -> tuple[McpConnection, list[Any]] | str:
        connection: McpConnection | None = None
        try:
            connection = self._connection(server)
            connection.in_use += 1
            try:
                client = await connection.ready(self.connect_timeout)
                tools: list[Any] = []
                cursor: str | None = None
                for _ in range(_MAX_LIST_PAGES):
                    page = await asyncio.wait_for(
                        client.list_tools(cursor=cursor), self.connect_timeout
                    )
                    tools.extend(page.tools[: self.settings.max_tools - len(tools)])
                    cursor = page.next_cursor
                    if cursor is None or len(tools) >= self.settings.max_tools:
                        break
            finally:
                self._done_with(connection)
        except PoolFull as full:
            log.warning("mcp server unavailable server=%s error=PoolFull", server.describe())
            return str(full)
        except Exception as exc:  # noqa: BLE001 - an unreachable server only loses its tools
            if connection is not None:
                self._retire(connection)
            reason = (
                f"no answer within {self.connect_timeout:g}s"
                if isinstance(exc, TimeoutError)
                else error_text(root_cause(exc), server)
            )
            log.warning(
                "mcp server unavailable server=%s error=%s",
                server.describe(),
                type(root_cause(exc)).__name__,
            )
            return reason
        return connection, tools

    async def call(
        self, tool: McpTool, arguments: dict[str, Any], *, seconds: float | None = None
    ) -> ToolOutcome:
        """Call ``tool``; errors and timeouts come back as a :class:`ToolOutcome` with
        ``error`` set, never as an exception (cancellation excepted). Traced as an
        ``mcp.tool_call`` span when tracing is on (server and tool names, never arguments)."""
        attributes = {"mcp.server": tool.server.name, "mcp.tool": tool.tool}
        with tracing.span("mcp.tool_call", attributes, client=True) as span:
            outcome = await self._call(tool, arguments, seconds=seconds)
            if outcome.error:
                tracing.failed(span, "tool_error")
        return outcome

    async def _call(
        self, tool: McpTool, arguments: dict[str, Any], *, seconds: float | None = None
    ) -> ToolOutcome:
        limit = seconds if seconds is not None else self.call_timeout
        connection: McpConnection | None = None
        try:
            connection = self._connection(tool.server)
            connection.in_use += 1
            try:
                client = await connection.ready(self.connect_timeout)
                result = await asyncio.wait_for(
                    client.call_tool(tool.tool, arguments, read_timeout_seconds=limit),
                    limit + 1.0,
                )
            finally:
                self._done_with(connection)
        except Exception as exc:  # noqa: BLE001 - a failing tool must not fail the task
            cause = root_cause(exc)
            if isinstance(cause, TimeoutError) or _is_request_timeout(cause):
                message = f"the tool {tool.tool!r} did not answer within {limit:g}s"
            else:
                if connection is not None and not _is_protocol_error(cause):
                    self._retire(connection)  # the transport is suspect: reconnect next time
                message = f"the tool {tool.tool!r} failed: {error_text(cause, tool.server)}"
            log.info(
                "mcp tool call failed server=%s tool=%s error=%s",
                tool.server.name,
                tool.tool,
                type(cause).__name__,
            )
            return ToolOutcome(text=f"Error: {message}", error=message)
        return result_outcome(result, self.settings.max_result_chars)

    # -- the pool --------------------------------------------------------------------------

    def _connection(self, server: McpServerConfig) -> McpConnection:
        """The live connection for ``server``, opened if needed (room made first, or
        :class:`PoolFull`). Synchronous: no other task runs between the check and the
        insert."""
        if self._closed:
            raise RuntimeError("the MCP connection pool is closed")
        connection = self._connections.get(server.key)
        if connection is not None and connection.broken:
            self._retire(connection)
            connection = None
        if connection is None:
            self._make_room(server.tenant_id)
            connection = McpConnection(
                server,
                read_timeout=self.call_timeout,
                policy=self.policy,
                connecting=self._connecting,
                max_message_bytes=self.settings.max_message_bytes,
            )
            self._connections[server.key] = connection
            log.info("mcp connecting server=%s", server.describe())
        connection.last_used = time.monotonic()
        return connection

    def _make_room(self, tenant_id: str | None) -> None:
        """Close least recently used connections nobody uses or holds (broken ones first)
        until one more fits under both bounds, or raise :class:`PoolFull`."""
        settings = self.settings
        while True:
            live = list(self._connections.values())
            mine = [c for c in live if tenant_id is not None and c.server.tenant_id == tenant_id]
            tenant_full = tenant_id is not None and len(mine) >= settings.max_connections_per_tenant
            if not tenant_full and len(live) < settings.max_connections:
                return
            victims = [c for c in (mine if tenant_full else live) if c.broken or c.idle]
            if not victims:
                raise PoolFull(
                    "the worker holds as many MCP connections as it may "
                    + (
                        f"for this tenant ({settings.max_connections_per_tenant})"
                        if tenant_full
                        else f"({settings.max_connections})"
                    )
                    + ", all in use: try again later"
                )
            self._retire(min(victims, key=lambda c: (not c.broken, c.last_used)))

    def _retire(self, connection: McpConnection) -> None:
        """Take ``connection`` out of the pool; it is closed once no call is in flight on
        it (other tasks' calls finish first)."""
        if self._connections.get(connection.server.key) is connection:
            del self._connections[connection.server.key]
        if not connection.retired:
            connection.retired = True
            if connection.in_use == 0:
                self._close_later(connection)
            else:
                self._retired.add(connection)

    def _done_with(self, connection: McpConnection) -> None:
        connection.in_use -= 1
        connection.last_used = time.monotonic()
        if connection.retired and connection.in_use == 0:
            self._close_later(connection)

    def _close_idle(self, keep: set[str]) -> None:
        now = time.monotonic()
        for key, connection in list(self._connections.items()):
            idle = now - connection.last_used > self.idle_timeout and connection.idle
            if key not in keep and (idle or connection.broken):
                self._retire(connection)

    def _close_later(self, connection: McpConnection) -> None:
        self._retired.discard(connection)
        if connection.closing:
            return
        connection.closing = True
        task = asyncio.create_task(connection.close(), name="mcp:close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every connection (stops stdio server processes). Idempotent."""
        self._closed = True
        connections = [*self._connections.values(), *self._retired]
        self._connections.clear()
        self._retired.clear()
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)


def _is_request_timeout(exc: BaseException) -> bool:
    try:
        from mcp import MCPError  # noqa: PLC0415
        from mcp_types import REQUEST_TIMEOUT  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, MCPError) and exc.code == REQUEST_TIMEOUT


def _is_protocol_error(exc: BaseException) -> bool:
    """An error the server answered with (the connection is fine)."""
    try:
        from mcp import MCPError  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, MCPError)

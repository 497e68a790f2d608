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
connection lives in a background task the pool owns; :meth:`McpConnections.close` ends them
all (call it on worker shutdown).

Contracts:

* Secrets never leave this module in logs, errors or ``repr``: ``env`` and ``headers`` values
  are only handed to the subprocess / HTTP client (stored ones are decrypted here, with the
  keys of :class:`~processgpt.db.secret_box.SecretBox`).
* A server that cannot be reached only removes its tools (reported in
  :attr:`Toolset.unavailable`); a failing or timed-out tool call returns a
  :class:`ToolOutcome` with ``error`` set. Neither raises.
* Tool names the model sees are ``<server>__<tool>``, sanitised to ``^[a-zA-Z0-9_-]{1,64}$``
  and unique within a :class:`Toolset`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from processgpt.config import McpSettings, SecretSettings
from processgpt.db.secret_box import SecretBox
from processgpt.tools.mcp_config import (
    McpServerConfig,
    OperatorConfig,
    ServerPlan,
    plan_for_task,
    url_without_secrets,
)
from processgpt.tools.netguard import NetworkPolicy, guarded_http_client

if TYPE_CHECKING:  # the mcp package is an optional dependency (the ``llm`` extra)
    import mcp

__all__ = [
    "McpConnections",
    "McpServerConfig",
    "McpTool",
    "ToolOutcome",
    "Toolset",
    "function_name",
]

log = logging.getLogger(__name__)

_NAME_OK = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_NAME = 64
_MAX_ERROR_CHARS = 500
_MAX_LIST_PAGES = 20


# -- tools -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class McpTool:
    """A tool as the model sees it (``name``) and where it really lives."""

    name: str
    server: McpServerConfig
    tool: str
    description: str
    parameters: dict[str, Any]

    def function_schema(self) -> dict[str, Any]:
        """The OpenAI Chat Completions ``tools`` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ToolOutcome:
    """A tool call's result: ``text`` goes back to the model, ``output`` into the event log;
    ``error`` is set when the call failed (then ``text`` says so)."""

    text: str
    output: Any = None
    error: str | None = None


@dataclass
class Toolset:
    """The MCP tools available to one task, by the name the model uses."""

    tools: dict[str, McpTool] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    """Server name → why its tools are missing."""

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.function_schema() for tool in self.tools.values()]


def function_name(server: str, tool: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """``<server>__<tool>`` sanitised to ``^[a-zA-Z0-9_-]{1,64}$`` and not in ``taken``."""
    base = _NAME_OK.sub("_", f"{server}__{tool}")[:_MAX_NAME] or "tool"
    name = base
    while name in taken:
        digest = hashlib.sha256(f"{server}\0{tool}\0{name}".encode()).hexdigest()[:8]
        name = f"{base[: _MAX_NAME - 9]}_{digest}"
    return name


def _parameters(schema: Any) -> dict[str, Any]:
    params = dict(schema) if isinstance(schema, Mapping) else {}
    params.setdefault("type", "object")
    if params["type"] == "object":
        params.setdefault("properties", {})
    params.pop("title", None)
    return params


def _error_text(exc: BaseException, server: McpServerConfig | None = None) -> str:
    """The error's message, without the server's secrets (URL, env and header values)."""
    text = str(exc) or type(exc).__name__
    if server is not None:
        if server.url:
            text = text.replace(server.url, url_without_secrets(server.url))
        for secret in [*server.env.values(), *server.headers.values()]:
            if len(secret) >= 4:
                text = text.replace(secret, "***")
    return text[:_MAX_ERROR_CHARS]


def _result_outcome(result: Any) -> ToolOutcome:
    texts: list[str] = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            texts.append(block.text)
        elif kind in ("image", "audio"):
            texts.append(f"[{kind} content, {getattr(block, 'mime_type', 'unknown type')}]")
        elif kind == "resource_link":
            texts.append(f"[resource {getattr(block, 'uri', '')}]")
        else:
            texts.append(f"[{kind or 'unknown'} content]")
    text = "\n".join(texts)
    structured = result.structured_content
    if result.is_error:
        message = (text or "the tool reported an error")[:_MAX_ERROR_CHARS]
        return ToolOutcome(text=f"Error: {message}", error=message)
    if not text and structured is not None:
        text = json.dumps(structured, ensure_ascii=False, default=str)
    return ToolOutcome(text=text, output=structured if structured is not None else text)


# -- connections -----------------------------------------------------------------------------


class _Connection:
    """One live client session, held open by a background task the pool owns (anyio
    requires the session to be entered and left in the same task)."""

    def __init__(self, server: McpServerConfig, read_timeout: float, policy: NetworkPolicy) -> None:
        self.server = server
        self.read_timeout = read_timeout
        self.policy = policy
        self.client: mcp.Client | None = None
        self.broken = False
        self.last_used = time.monotonic()
        self.in_use = 0
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(self._hold(), name=f"mcp:{server.name}")

    async def ready(self, within: float) -> mcp.Client:
        await asyncio.wait_for(asyncio.shield(self._ready), within)
        assert self.client is not None
        return self.client

    async def _hold(self) -> None:
        try:
            import mcp  # noqa: PLC0415 - optional dependency

            async with contextlib.AsyncExitStack() as stack:
                target = await self._target(stack)
                client = mcp.Client(target, read_timeout_seconds=self.read_timeout)
                self.client = await stack.enter_async_context(client)
                self._ready.set_result(None)
                await self._stop.wait()
        except asyncio.CancelledError:
            self.broken = True
            raise
        except Exception as exc:  # noqa: BLE001 - a dead server must not take the pool down
            self.broken = True
            if not self._ready.done():
                message = _error_text(_root_cause(exc), self.server)
                self._ready.set_exception(ConnectionError(message))
            else:
                log.warning(
                    "mcp connection ended server=%s error=%s",
                    self.server.describe(),
                    type(_root_cause(exc)).__name__,
                )
        finally:
            self.broken = True
            if not self._ready.done():
                self._ready.set_exception(ConnectionError("the connection was closed"))
            # Nobody may be waiting on it; retrieving it keeps asyncio from logging it.
            with contextlib.suppress(BaseException):
                self._ready.exception()

    async def _target(self, stack: contextlib.AsyncExitStack) -> Any:
        import mcp  # noqa: PLC0415
        from mcp.client.streamable_http import streamable_http_client  # noqa: PLC0415

        server = self.server
        if server.command:
            return mcp.StdioServerParameters(
                command=server.command,
                args=list(server.args),
                env=dict(server.env) or None,
                cwd=server.cwd,
            )
        import httpx2  # noqa: PLC0415 - mcp 2.x's HTTP client

        timeout = httpx2.Timeout(30.0, read=max(300.0, self.read_timeout))
        headers = dict(server.headers)
        client = (
            guarded_http_client(self.policy, headers=headers, timeout=timeout)
            if server.guarded
            else httpx2.AsyncClient(headers=headers, timeout=timeout)
        )
        http = await stack.enter_async_context(client)
        assert server.url is not None
        return streamable_http_client(server.url, http_client=http)

    async def close(self) -> None:
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 5.0)
        except (TimeoutError, Exception):  # noqa: BLE001 - closing is best effort
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


def _root_cause(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio wraps transport errors in groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class McpConnections:
    """A per-process pool of MCP connections, shared by all tasks of a worker.

    ``settings``: the operator's file, timeouts and network policy (default: from the
    environment); ``box``: the keys that open stored secrets (default: from the environment or
    the data directory). ``connect_timeout``: seconds to start a server and finish the
    handshake; ``call_timeout``: default seconds per tool call (both default to the
    settings); ``idle_timeout``: connections not used for this long are closed (checked
    whenever tools are requested).
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
        self._connections: dict[str, _Connection] = {}
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
        """Connect (or reuse connections) to ``servers`` and list their tools."""
        if self._closed:
            raise RuntimeError("the MCP connection pool is closed")
        self._close_idle({s.key for s in servers})
        toolset = Toolset()
        listings = await asyncio.gather(*(self._list(s) for s in servers))
        taken: set[str] = set()
        for server, listing in zip(servers, listings, strict=True):
            if isinstance(listing, str):
                toolset.unavailable[server.name] = listing
                continue
            for tool in listing:
                name = function_name(server.name, tool.name, taken)
                taken.add(name)
                toolset.tools[name] = McpTool(
                    name=name,
                    server=server,
                    tool=tool.name,
                    description=(tool.description or tool.title or tool.name)[:1024],
                    parameters=_parameters(tool.input_schema),
                )
        return toolset

    async def _list(self, server: McpServerConfig) -> list[Any] | str:
        try:
            client = await self._client(server)
            tools: list[Any] = []
            cursor: str | None = None
            for _ in range(_MAX_LIST_PAGES):
                page = await asyncio.wait_for(
                    client.list_tools(cursor=cursor), self.connect_timeout
                )
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
        except Exception as exc:  # noqa: BLE001 - an unreachable server only loses its tools
            self._discard(server)
            reason = (
                f"no answer within {self.connect_timeout:g}s"
                if isinstance(exc, TimeoutError)
                else _error_text(_root_cause(exc), server)
            )
            log.warning(
                "mcp server unavailable server=%s error=%s",
                server.describe(),
                type(_root_cause(exc)).__name__,
            )
            return reason
        return tools

    async def call(
        self, tool: McpTool, arguments: dict[str, Any], *, seconds: float | None = None
    ) -> ToolOutcome:
        """Call ``tool``; errors and timeouts come back as a :class:`ToolOutcome` with
        ``error`` set, never as an exception (cancellation excepted)."""
        limit = seconds if seconds is not None else self.call_timeout
        try:
            client = await self._client(tool.server)
            connection = self._connections.get(tool.server.key)
            if connection is not None:
                connection.in_use += 1
            try:
                result = await asyncio.wait_for(
                    client.call_tool(tool.tool, arguments, read_timeout_seconds=limit),
                    limit + 1.0,
                )
            finally:
                if connection is not None:
                    connection.in_use -= 1
                    connection.last_used = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - a failing tool must not fail the task
            cause = _root_cause(exc)
            if isinstance(cause, TimeoutError) or _is_request_timeout(cause):
                message = f"the tool {tool.tool!r} did not answer within {limit:g}s"
            else:
                if not _is_protocol_error(cause):
                    self._discard(tool.server)  # the transport is suspect: reconnect next time
                message = f"the tool {tool.tool!r} failed: {_error_text(cause, tool.server)}"
            log.info(
                "mcp tool call failed server=%s tool=%s error=%s",
                tool.server.name,
                tool.tool,
                type(cause).__name__,
            )
            return ToolOutcome(text=f"Error: {message}", error=message)
        return _result_outcome(result)

    async def _client(self, server: McpServerConfig) -> mcp.Client:
        connection = self._connections.get(server.key)
        if connection is None or connection.broken:
            if connection is not None:
                self._discard(server)
            connection = _Connection(server, self.call_timeout, self.policy)
            self._connections[server.key] = connection
            log.info("mcp connecting server=%s", server.describe())
        connection.last_used = time.monotonic()
        return await connection.ready(self.connect_timeout)

    def _discard(self, server: McpServerConfig) -> None:
        connection = self._connections.pop(server.key, None)
        if connection is not None:
            self._close_later(connection)

    def _close_idle(self, keep: set[str]) -> None:
        now = time.monotonic()
        for key, connection in list(self._connections.items()):
            idle = now - connection.last_used > self.idle_timeout and connection.in_use == 0
            if key not in keep and (idle or connection.broken):
                del self._connections[key]
                self._close_later(connection)

    def _close_later(self, connection: _Connection) -> None:
        task = asyncio.create_task(connection.close(), name="mcp:close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every connection (stops stdio server processes). Idempotent."""
        self._closed = True
        connections = list(self._connections.values())
        self._connections.clear()
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

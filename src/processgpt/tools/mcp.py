"""MCP tools: server configuration, a per-process connection pool, and tool calls.

Servers are described in the common ``mcp.json`` shape::

    {"mcpServers": {
        "files":  {"command": "npx", "args": ["-y", "@mcp/files"], "env": {"TOKEN": "…"}},
        "search": {"url": "http://127.0.0.1:8000/mcp", "headers": {"Authorization": "…"}}}}

from a file (``PROCESSGPT_MCP_CONFIG``) merged with the tenant's configuration (the task's
``extras["tenant_mcp"]``, same shape; a tenant entry replaces a file entry of the same name).
Entries with ``"disabled": true`` are skipped. Transports: stdio (``command``) and streamable
HTTP (``url``).

:class:`McpConnections` keeps one connection per distinct server configuration (keyed by a
hash of it, so an edited configuration gets a new connection on the next task and the old one
is closed once idle) and reuses it across tasks. Each connection lives in a background task
the pool owns; :meth:`McpConnections.close` ends them all (call it on worker shutdown).

Contracts:

* Secrets never leave this module in logs, errors or ``repr``: ``env`` and ``headers`` values
  are only handed to the subprocess / HTTP client.
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
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the mcp package is an optional dependency (the ``llm`` extra)
    import mcp

log = logging.getLogger(__name__)

MCP_CONFIG_ENV = "PROCESSGPT_MCP_CONFIG"
_NAME_OK = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_NAME = 64
_MAX_ERROR_CHARS = 500
_MAX_LIST_PAGES = 20


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class McpServerConfig:
    """One server entry. ``env`` and ``headers`` are secrets: never logged or shown."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    @property
    def key(self) -> str:
        """A hash of everything that defines the connection (not the name): equal configs
        share a connection; any change makes a new one."""
        canonical = json.dumps(
            {
                "command": self.command,
                "args": list(self.args),
                "env": dict(sorted(self.env.items())),
                "cwd": self.cwd,
                "url": self.url,
                "headers": dict(sorted(self.headers.items())),
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def describe(self) -> str:
        """A log-safe description: the server name and where it runs, no secrets."""
        where = self.command if self.command else _url_without_secrets(self.url or "")
        return f"{self.name} ({self.transport}: {where})"

    def __repr__(self) -> str:
        return f"McpServerConfig({self.describe()})"


def parse_servers(config: Any, *, source: str) -> dict[str, McpServerConfig]:
    """The servers of an ``{"mcpServers": {...}}`` document. Malformed entries are skipped
    with a warning naming the entry (never its values)."""
    if not config:
        return {}
    servers = config.get("mcpServers") if isinstance(config, Mapping) else None
    if not isinstance(servers, Mapping):
        log.warning("mcp config has no mcpServers object source=%s", source)
        return {}
    parsed: dict[str, McpServerConfig] = {}
    for name, entry in servers.items():
        server = _parse_entry(str(name), entry, source)
        if server is not None:
            parsed[server.name] = server
    return parsed


def _parse_entry(name: str, entry: Any, source: str) -> McpServerConfig | None:
    if not isinstance(entry, Mapping):
        log.warning("mcp server entry is not an object source=%s server=%s", source, name)
        return None
    if entry.get("disabled") or entry.get("enabled") is False:
        return None
    problem = _entry_problem(entry)
    if problem:
        log.warning("mcp server entry skipped: %s source=%s server=%s", problem, source, name)
        return None
    if entry.get("command"):
        return McpServerConfig(
            name=name,
            command=entry["command"],
            args=tuple(str(a) for a in entry.get("args") or []),
            env={str(k): str(v) for k, v in (entry.get("env") or {}).items()},
            cwd=str(entry["cwd"]) if entry.get("cwd") else None,
        )
    return McpServerConfig(
        name=name,
        url=entry["url"],
        headers={str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
    )


def _entry_problem(entry: Mapping[str, Any]) -> str | None:
    """Why an entry cannot be used (never quoting its values), or None."""
    args = entry.get("args") or []
    if not isinstance(entry.get("env") or {}, Mapping) or not isinstance(
        entry.get("headers") or {}, Mapping
    ):
        return "env and headers must be objects"
    if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
        return "args must be a list of strings"
    if str(entry.get("type") or entry.get("transport") or "").lower() == "sse":
        return "the sse transport is not supported (use streamable HTTP)"
    command, url = entry.get("command"), entry.get("url")
    if isinstance(command, str) and command:
        return None
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return None
    return "it has neither a command nor an http(s) url"


def load_servers(
    tenant_config: Any = None, *, config_path: str | os.PathLike[str] | None = None
) -> list[McpServerConfig]:
    """The servers for a task: the file's (``config_path``, default ``$PROCESSGPT_MCP_CONFIG``)
    merged with the tenant's, which win on equal names. The file is read on every call, so
    an edit takes effect on the next task."""
    path = config_path if config_path is not None else os.environ.get(MCP_CONFIG_ENV)
    servers: dict[str, McpServerConfig] = {}
    if path:
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("cannot read mcp config path=%s error=%s", path, type(exc).__name__)
        else:
            servers.update(parse_servers(document, source="file"))
    servers.update(parse_servers(tenant_config, source="tenant"))
    return list(servers.values())


def _url_without_secrets(url: str) -> str:
    """Scheme, host and path only: no userinfo, no query string."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return ""
    authority, slash, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    return f"{scheme}://{host}{slash}{path.split('?', 1)[0]}"


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
            text = text.replace(server.url, _url_without_secrets(server.url))
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

    def __init__(self, server: McpServerConfig, read_timeout: float) -> None:
        self.server = server
        self.read_timeout = read_timeout
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

        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                headers=dict(server.headers),
                timeout=httpx2.Timeout(30.0, read=max(300.0, self.read_timeout)),
            )
        )
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

    ``connect_timeout``: seconds to start a server and finish the handshake;
    ``call_timeout``: default seconds per tool call; ``idle_timeout``: connections not used
    for this long are closed (checked whenever tools are requested).
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 20.0,
        call_timeout: float = 60.0,
        idle_timeout: float = 600.0,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.idle_timeout = idle_timeout
        self._connections: dict[str, _Connection] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._connections)

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
            connection = _Connection(server, self.call_timeout)
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

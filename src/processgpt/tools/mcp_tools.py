"""MCP tools as a model sees them, and what a call returns: names, schemas and results, each
bounded, secrets kept out of error texts."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from processgpt.tools.mcp_config import McpServerConfig, url_without_secrets

log = logging.getLogger(__name__)

_NAME_OK = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_NAME = 64
MAX_ERROR_CHARS = 500
MAX_DESCRIPTION_CHARS = 1024
MAX_SCHEMA_CHARS = 64_000
"""A tool whose parameters' JSON schema is longer is left out (logged)."""


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
    """The MCP tools available to one task, by the name the model uses.

    A toolset from :meth:`~processgpt.tools.mcp.McpConnections.toolset` holds its
    connections open (they are not closed to make room for others) until it is given back
    with :meth:`~processgpt.tools.mcp.McpConnections.release`."""

    tools: dict[str, McpTool] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    """Server name → why its tools are missing."""
    held: list[Any] = field(default_factory=list, repr=False)
    """The connections this toolset holds (the pool's business)."""

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.function_schema() for tool in self.tools.values()]

    def add(self, server: McpServerConfig, listing: list[Any]) -> None:
        """Add a server's listed tools under names unique in this toolset. Tools whose schema
        is longer than :data:`MAX_SCHEMA_CHARS` are left out."""
        taken = set(self.tools)
        for tool in listing:
            parameters = _parameters(tool.input_schema)
            if len(json.dumps(parameters, default=str)) > MAX_SCHEMA_CHARS:
                log.warning(
                    "mcp tool left out: its schema is too long server=%s tool=%s",
                    server.name,
                    str(tool.name)[:100],
                )
                continue
            name = function_name(server.name, tool.name, taken)
            taken.add(name)
            self.tools[name] = McpTool(
                name=name,
                server=server,
                tool=tool.name,
                description=(tool.description or tool.title or tool.name)[:MAX_DESCRIPTION_CHARS],
                parameters=parameters,
            )


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


def error_text(exc: BaseException, server: McpServerConfig | None = None) -> str:
    """The error's message, without the server's secrets (URL, env and header values)."""
    text = str(exc) or type(exc).__name__
    if server is not None:
        text = without_secrets(text, server)
    return text[:MAX_ERROR_CHARS]


def without_secrets(text: str, server: McpServerConfig) -> str:
    """``text`` with the server's URL shown as :func:`url_without_secrets` shows it (its
    path, query, fragment and userinfo replaced by ``***`` wherever they appear) and its env
    and header values replaced by ``***``."""
    if server.url:
        text = text.replace(server.url, url_without_secrets(server.url))
        pieces: tuple[str | None, ...] = ()
        try:
            parts = urlsplit(server.url)
            pieces = (parts.path, parts.query, parts.fragment, parts.password, parts.username)
        except ValueError:
            pass
        for piece in pieces:
            if piece and len(piece) >= 4:  # the URL may be quoted in another form
                text = text.replace(piece, "***")
    for secret in [*server.env.values(), *server.headers.values()]:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def result_outcome(result: Any, max_chars: int) -> ToolOutcome:
    """A call's result as the model and the event log get it: at most ``max_chars`` of text
    (the rest cut, and said so); structured output longer than that is replaced by the text."""
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
        message = (text or "the tool reported an error")[:MAX_ERROR_CHARS]
        return ToolOutcome(text=f"Error: {message}", error=message)
    if structured is not None:
        encoded = json.dumps(structured, ensure_ascii=False, default=str)
        if len(encoded) > max_chars:
            structured = None
            text = text or encoded
        elif not text:
            text = encoded
    text = _cut(text, max_chars)
    return ToolOutcome(text=text, output=structured if structured is not None else text)


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}\n[… {len(text) - max_chars} more characters cut]"

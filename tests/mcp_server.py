"""A real MCP server for the tests, built with the ``mcp`` package.

Tools: ``add(a, b)``, ``lookup(q)`` (a tiny fixed index; ``PROCESSGPT_TEST_MCP_TAG`` is added
to every answer, so tests can tell which server answered), ``fail()`` (always raises),
``slow(seconds)``, ``environment()`` (the server process's environment, as JSON),
``request_info()`` (over HTTP: the headers and query string of the request, as JSON), and
``remember(value)`` / ``recall()`` (state kept in the server process: what was remembered so
far, so tests can tell whether two callers share a process), and ``big(size)`` (a text of
``size`` characters).

With ``PROCESSGPT_TEST_MCP_STDERR=N`` the server first writes to stderr a line naming its
``SECRET_TOKEN`` value (as ``SECRET_TOKEN=…`` and bare), a 5,000-character line, and N more
lines.

    python tests/mcp_server.py                 # stdio
    python tests/mcp_server.py --http PORT     # streamable HTTP on 127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("processgpt-test", log_level="WARNING")

_INDEX = {"processgpt": "a Postgres-native agent runtime", "mcp": "the Model Context Protocol"}


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def lookup(q: str) -> str:
    """Look a term up in a small index."""
    tag = os.environ.get("PROCESSGPT_TEST_MCP_TAG", "")
    answer = _INDEX.get(q.lower(), "no entry")
    return f"{answer} [{tag}]" if tag else answer


@server.tool()
def fail() -> str:
    """Always fails."""
    raise ToolError("the fail tool always fails")


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "slept"


@server.tool()
def environment() -> str:
    """The server's environment variables."""
    return json.dumps(dict(os.environ))


@server.tool()
def request_info(ctx: Context) -> str:
    """The HTTP request's headers and query string (empty over stdio)."""
    request: Any = ctx.request_context.request
    if request is None:
        return json.dumps({})
    return json.dumps({"headers": dict(request.headers), "query": str(request.url.query)})


_MEMORY: list[str] = []


@server.tool()
def remember(value: str) -> str:
    """Keep a value in this server process."""
    _MEMORY.append(value)
    return "remembered"


@server.tool()
def recall() -> str:
    """Everything remembered by this server process so far, as a JSON list."""
    return json.dumps(_MEMORY)


@server.tool()
def big(size: int) -> str:
    """A text of ``size`` characters."""
    return "x" * size


def _chatter() -> None:
    lines = int(os.environ.get("PROCESSGPT_TEST_MCP_STDERR") or 0)
    if not lines:
        return
    secret = os.environ.get("SECRET_TOKEN", "")
    print(f"starting with SECRET_TOKEN={secret} (bare: {secret})", file=sys.stderr)
    print("long " + "y" * 5000, file=sys.stderr)
    for number in range(lines):
        print(f"noise {number}", file=sys.stderr)
    sys.stderr.flush()


def main() -> None:
    _chatter()
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP")
    args = parser.parse_args()
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run()


if __name__ == "__main__":
    main()

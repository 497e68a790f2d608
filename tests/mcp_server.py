"""A real MCP server for the tests, built with the ``mcp`` package.

Tools: ``add(a, b)``, ``lookup(q)`` (a tiny fixed index; ``PROCESSGPT_TEST_MCP_TAG`` is added
to every answer, so tests can tell which server answered), ``fail()`` (always raises) and
``slow(seconds)``.

    python tests/mcp_server.py                 # stdio
    python tests/mcp_server.py --http PORT     # streamable HTTP on 127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import argparse
import asyncio
import os

from mcp.server.mcpserver import MCPServer
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP")
    args = parser.parse_args()
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run()


if __name__ == "__main__":
    main()

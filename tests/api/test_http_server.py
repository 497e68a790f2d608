"""The API's HTTP server as clients meet it, over real sockets."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

from tests.support import StartProcess


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> bytes:
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(re.search(rb"content-length: (\d+)", head.lower())[1])  # type: ignore[index]
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


async def test_an_idle_connection_outlives_the_clients_own_expiry(
    start_process: StartProcess,
) -> None:
    """Clients (httpx: 5 s) and load balancers close idle connections themselves; a server
    that closes first races with a request sent at that moment, which then fails."""
    server = start_process("api", env={"PROCESSGPT_API_PORT": "0"})
    await server.wait_for_log("api listening url=")
    match = re.search(r"api listening url=(\S+)", server.log())
    assert match is not None
    url = urlsplit(match[1])
    assert url.hostname is not None and url.port is not None
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        assert await _get(reader, writer, url.netloc) == b"HTTP/1.1 200 OK"
        await asyncio.sleep(6)  # longer than uvicorn's default keep-alive of 5 s
        assert await _get(reader, writer, url.netloc) == b"HTTP/1.1 200 OK"
    finally:
        writer.close()

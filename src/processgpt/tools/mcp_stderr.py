"""What a stdio MCP server writes on stderr, logged instead of inherited.

Each server gets a pipe for its stderr (not the worker's own stderr, which the worker's log
handler does not see). Its lines are logged at INFO by the logger
``processgpt.mcp.server.<server name>`` (so the handler scrubs them as it scrubs every line),
with the server's own secrets (its env and header values) replaced by ``***`` first, each
line cut at :data:`MAX_LINE_CHARS`, and at most :data:`LINES_PER_WINDOW` lines per
:data:`WINDOW_SECONDS` (the rest counted and reported as dropped). The pipe is always read to
its end, so a chatty server never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from types import TracebackType
from typing import IO

from processgpt.tools.mcp_config import McpServerConfig
from processgpt.tools.mcp_tools import without_secrets

MAX_LINE_CHARS = 1000
LINES_PER_WINDOW = 50
WINDOW_SECONDS = 60.0
_CHUNK = 4096
_DRAIN_SECONDS = 1.0
"""How long closing waits for the last lines once the server has stopped."""


class ServerStderr:
    """``async with ServerStderr(server) as errlog:`` gives the file to pass as the server's
    stderr; call :meth:`spawned` once the process is started (the worker's copy of the write
    end is closed then, so the pipe ends when the server's processes do). Leaving the block
    reads what is left (briefly) and stops the reader."""

    def __init__(self, server: McpServerConfig) -> None:
        self._server = server
        self._log = logging.getLogger(f"processgpt.mcp.server.{server.name}")
        self._write: IO[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._window_start = time.monotonic()
        self._lines = 0
        self._dropped = 0

    async def __aenter__(self) -> IO[str]:
        read_end, self._write = _pipe()
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), read_end
            )
        except BaseException:
            read_end.close()
            self.spawned()
            raise
        self._task = asyncio.create_task(self._read(reader), name=f"mcp-stderr:{self._server.name}")
        return self._write

    def spawned(self) -> None:
        """The process has its copy of the write end: close the worker's."""
        if self._write is not None:
            self._write.close()
            self._write = None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.spawned()
        task = self._task
        try:
            if task is not None:
                await asyncio.wait({task}, timeout=_DRAIN_SECONDS)
        finally:
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task})
            if self._transport is not None:
                self._transport.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            await self._lines_of(reader)
        except Exception as exc:  # noqa: BLE001 - losing the server's stderr loses no work
            self._log.warning("stderr unreadable error=%s", type(exc).__name__)

    async def _lines_of(self, reader: asyncio.StreamReader) -> None:
        buffer = b""
        skipping = False  # the rest of a line already logged as too long
        while chunk := await reader.read(_CHUNK):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not skipping:
                    self._emit(line)
                skipping = False
            if len(buffer) > MAX_LINE_CHARS * 4:  # never hold more than that of one line
                if not skipping:
                    self._emit(buffer)
                buffer, skipping = b"", True
        if buffer and not skipping:
            self._emit(buffer)
        self._report_dropped()

    def _emit(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if not text.strip():
            return
        now = time.monotonic()
        if now - self._window_start >= WINDOW_SECONDS:
            self._report_dropped()
            self._window_start, self._lines = now, 0
        if self._lines >= LINES_PER_WINDOW:
            self._dropped += 1
            return
        self._lines += 1
        text = without_secrets(text, self._server)
        if len(text) > MAX_LINE_CHARS:
            text = f"{text[:MAX_LINE_CHARS]}… (cut)"
        self._log.info("stderr tenant=%s line=%s", self._server.tenant_id or "-", text)

    def _report_dropped(self) -> None:
        if self._dropped:
            self._log.warning(
                "stderr lines dropped tenant=%s dropped=%d (more than %d a minute)",
                self._server.tenant_id or "-",
                self._dropped,
                LINES_PER_WINDOW,
            )
            self._dropped = 0


def _pipe() -> tuple[IO[bytes], IO[str]]:
    """A pipe: its read end (for the event loop) and its write end (for the child)."""
    read_fd, write_fd = os.pipe()
    return os.fdopen(read_fd, "rb", buffering=0), os.fdopen(write_fd, "w", encoding="utf-8")

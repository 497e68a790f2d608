"""The ``processgpt`` command as a user runs it: real ``processgpt`` processes (``api``,
``up``, ``worker``) and the command itself, in a shell of its own."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from tests.support import StartProcess


@dataclass(frozen=True)
class RunningApi:
    """A real ``processgpt api`` process and a key of tenant ``default``."""

    url: str
    key: str

    @property
    def flags(self) -> tuple[str, ...]:
        return ("--url", self.url, "--api-key", self.key)


@pytest.fixture
async def api(db: Database, start_process: StartProcess) -> RunningApi:
    key = (await ApiKeyRepository(db).create("default")).key
    server = start_process("api", "--port", "0")
    await server.wait_for_log("api listening url=")
    match = re.search(r"api listening url=(\S+)", server.log())
    assert match is not None
    return RunningApi(match[1], key)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory of the test's own: no profile of a real ``processgpt up`` is found."""
    path = tmp_path / "data"
    path.mkdir()
    return path


async def run_cli(
    *args: str,
    data_dir: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``processgpt <args>`` in a fresh environment (``PROCESSGPT_DATA_DIR`` =
    ``data_dir``, no ``DATABASE_URL`` unless ``env`` has one) and wait for it."""
    full_env = {"PATH": "/usr/bin:/bin", "PROCESSGPT_DATA_DIR": str(data_dir), **(env or {})}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "processgpt.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def start_cli(
    *args: str, data_dir: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``processgpt <args>`` like :func:`run_cli`, without waiting."""
    full_env = {"PATH": "/usr/bin:/bin", "PROCESSGPT_DATA_DIR": str(data_dir), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "processgpt.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


@pytest.fixture
async def started_clis() -> AsyncIterator[list[subprocess.Popen[str]]]:
    """Commands a test starts without waiting; killed at teardown if still running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

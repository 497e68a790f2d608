from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support import ProcessGPTProcess

StartProcess = Callable[..., ProcessGPTProcess]


@pytest.fixture
async def start_process(db_url: str, tmp_path: Path) -> AsyncIterator[StartProcess]:
    """Start a real ``processgpt`` process against the test database; killed at teardown."""
    started: list[ProcessGPTProcess] = []

    def start(
        *args: str, dsn: str | None = None, env: dict[str, str] | None = None
    ) -> ProcessGPTProcess:
        log_path = tmp_path / f"proc-{len(started)}.log"
        base_env = {"PROCESSGPT_POLL_INTERVAL": "0.2"}
        proc = ProcessGPTProcess(
            list(args), dsn=dsn or db_url, log_path=log_path, env={**base_env, **(env or {})}
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


async def start_worker(
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

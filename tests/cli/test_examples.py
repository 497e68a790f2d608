"""The README's "Your own agent", step by step: the example executor run by the installed
``processgpt worker --executor`` from the repository root, a task submitted and followed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from processgpt.db.database import Database
from tests.cli.conftest import RunningApi, run_cli
from tests.support import wait_until

ROOT = Path(__file__).parents[2]
EXECUTOR = "examples.my_agent:MyExecutor"
PROCESSGPT = Path(sys.executable).parent / "processgpt"
"""The installed command: its ``sys.path`` starts with its own directory, not the current
one (unlike ``python -m``), so finding ``examples`` is ``--executor``'s doing."""


@pytest.fixture
def start_installed() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _worker(db_url: str, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [PROCESSGPT, "worker", "--agent", "my-agent", "--executor", EXECUTOR],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={
                "PATH": "/usr/bin:/bin",
                "DATABASE_URL": db_url,
                "PROCESSGPT_POLL_INTERVAL": "0.2",
            },
        )


async def test_the_example_agent_runs_from_the_repository_root(
    db: Database,
    db_url: str,
    api: RunningApi,
    data_dir: Path,
    *,
    tmp_path: Path,
    start_installed: list[subprocess.Popen[bytes]],
) -> None:
    assert PROCESSGPT.exists()
    log = tmp_path / "worker.log"
    worker = _worker(db_url, ROOT, log)
    start_installed.append(worker)
    await wait_until(lambda: "worker started" in log.read_text() or worker.poll() is not None, 60)
    assert worker.poll() is None, log.read_text()

    result = await run_cli(
        "submit",
        "--agent",
        "my-agent",
        "The fox saw the other fox.",
        "--input",
        json.dumps({"top": 2, "delay": 0}),
        "--follow",
        *api.flags,
        data_dir=data_dir,
    )
    assert result.returncode == 0, result.stderr
    task_id = result.stdout.split()[1]
    events = [line.split()[2] for line in result.stdout.splitlines() if line[:4].strip().isdigit()]
    assert events[:3] == ["progress", "tool_usage_started", "tool_usage_finished"]
    assert "text_delta" in events and events[-1] == "crew_completed"
    assert result.stdout.count(f"task {task_id} DONE") == 1
    output = await db.fetchval("SELECT output FROM todolist WHERE id = $1", task_id)
    assert output == {"words": 6, "distinct": 4, "top": {"the": 2, "fox": 2}}
    text = await db.fetchval(
        "SELECT string_agg(data->>'text', '' ORDER BY seq) FROM events "
        "WHERE todo_id = $1 AND event_type = 'text_delta'",
        task_id,
    )
    assert text == "The most frequent words are the, fox."

    bad = await run_cli(
        "submit",
        "--agent",
        "my-agent",
        "x",
        "--input",
        '{"top": 0}',
        "--follow",
        *api.flags,
        data_dir=data_dir,
    )
    assert bad.returncode == 1 and "input.top must be an integer" in bad.stdout


async def test_outside_the_repository_the_example_is_not_found(
    db_url: str, tmp_path: Path, start_installed: list[subprocess.Popen[bytes]]
) -> None:
    log = tmp_path / "worker.log"
    worker = _worker(db_url, tmp_path, log)
    start_installed.append(worker)
    await wait_until(lambda: worker.poll() is not None, 60)
    assert worker.returncode == 2
    assert "error: invalid_input: cannot import 'examples.my_agent'" in log.read_text()

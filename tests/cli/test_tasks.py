"""``processgpt submit`` and ``processgpt tasks``: over the HTTP API of real processes, found
through ``--url``/``--api-key``, the environment, or the profile ``processgpt up`` leaves."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import stat
import time
from pathlib import Path
from typing import Any

from processgpt.db.database import Database
from tests.cli.conftest import RunningApi, run_cli, start_cli
from tests.support import StartProcess, wait_until


async def test_bad_input_is_refused_with_a_clear_error_and_nothing_written(
    db: Database, api: RunningApi, data_dir: Path
) -> None:
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo')")
    cases = [
        (["submit", "--agent", "nobody", "hi"], "unknown_agent"),
        (["submit", "--agent", "demo", "--input", "{bad json", "hi"], "invalid_json"),
        (["submit", "--agent", "demo", "--input", "[1, 2]", "hi"], "invalid_input"),
        (["submit", "--agent", "demo", "x" * 100_001], "invalid_input"),
        (["submit", "--agent", "Not A Name", "hi"], "invalid_input"),
        (["submit", "--agent", "demo", "--priority", "5000", "hi"], "invalid_input"),
        (["tasks", "cancel", "not-a-uuid"], "invalid_input"),
        (["tasks", "cancel", "00000000-0000-0000-0000-000000000000"], "task_not_found"),
        (["--tenant", "acme", "submit", "--agent", "demo", "hi"], "invalid_input"),
        (["tasks", "list", "--url", api.url, "--api-key", "pgpt_0000_wrong"], "unauthorized"),
    ]
    for args, code in cases:
        flags = () if "--url" in args else api.flags
        result = await run_cli(*args, *flags, data_dir=data_dir)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"error: {code}:" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert await db.fetchval("SELECT count(*) FROM todolist") == 0
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_submit_follow_through_the_profile_up_leaves(
    db_url: str, start_process: StartProcess, data_dir: Path
) -> None:
    """A second shell finds `up` through the profile of the data directory; it is readable
    by its owner only and removed when `up` stops."""
    up = start_process(
        "up",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--data-dir",
        str(data_dir),
        "--concurrency",
        "4",
    )
    await up.wait_for_log("processgpt is up")
    assert "/console#key=pgpt_" in up.log()
    assert "PROCESSGPT_LLM_BASE_URL" in up.log()  # how to turn the llm agents on
    profile = data_dir / "profile.json"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert json.loads(profile.read_text())["url"].startswith("http://127.0.0.1:")
    result = await run_cli(
        "submit",
        "--agent",
        "demo",
        "hello there",
        "--follow",
        "--input",
        json.dumps({"steps": 2, "delay": 0.01}),
        data_dir=data_dir,
        env={"DATABASE_URL": db_url},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("task ") and lines[0].endswith("PENDING")
    events = [line.split()[2] for line in lines[1:] if line[:4].strip().isdigit()]
    assert events == ["task_started", "task_working", "task_working", "crew_completed"]
    assert any(line.endswith(" DONE") for line in lines)
    assert '"upper": "HELLO THERE"' in result.stdout
    # up's own worker serves demo: no warning, not even before its first heartbeat
    assert "warning:" not in result.stderr
    workers = await run_cli("workers", data_dir=data_dir, env={"DATABASE_URL": db_url})
    assert workers.returncode == 0, workers.stderr
    header, row = workers.stdout.splitlines()
    assert header.split()[:3] == ["STATE", "ID", "SLOTS"]
    assert row.split()[0] == "live" and f":{up.proc.pid}:" in row.split()[1]
    assert row.split()[2].endswith("/4") and "demo" in row.split()[-1].split(",")

    up.signal(signal.SIGTERM)
    assert await up.wait() == 0
    assert not profile.exists()
    gone = await run_cli("tasks", "list", data_dir=data_dir)
    assert gone.returncode == 2 and "error: api_not_configured:" in gone.stderr
    assert "processgpt up" in gone.stderr and "--url" in gone.stderr


async def test_a_stopped_api_is_an_error_at_once(
    start_process: StartProcess, data_dir: Path
) -> None:
    """Each command ends within seconds (starting Python included), never waits."""
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    refused = await run_cli(
        "tasks", "list", "--url", f"http://127.0.0.1:{port}", "--api-key", "k", data_dir=data_dir
    )
    assert time.monotonic() - started < 15
    assert refused.returncode == 2
    assert "error: api_unreachable: cannot reach the API" in refused.stderr
    assert "connection refused" in refused.stderr

    up = start_process("up", "--port", "0", "--data-dir", str(data_dir))
    await up.wait_for_log("processgpt is up")
    up.kill()  # SIGKILL: its profile stays behind
    left = json.loads((data_dir / "profile.json").read_text())
    started = time.monotonic()
    stale = await run_cli("submit", "--agent", "demo", "hi", "--follow", data_dir=data_dir)
    assert time.monotonic() - started < 15
    assert stale.returncode == 2
    assert "error: api_unreachable:" in stale.stderr
    assert f"(pid {left['pid']}), which is no longer running" in stale.stderr


async def test_no_api_key_is_an_error_naming_the_fix(api: RunningApi, data_dir: Path) -> None:
    result = await run_cli("tasks", "list", "--url", api.url, data_dir=data_dir)
    assert result.returncode == 2 and "error: api_key_missing:" in result.stderr
    assert "--api-key" in result.stderr and "PROCESSGPT_API_KEY" in result.stderr


async def test_tasks_commands_manage_a_task(db: Database, api: RunningApi, data_dir: Path) -> None:
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo')")
    env = {"PROCESSGPT_URL": api.url, "PROCESSGPT_API_KEY": api.key}

    async def cli(*args: str) -> Any:
        return await run_cli(*args, data_dir=data_dir, env=env)

    submitted = await cli("submit", "--agent", "demo", "later", "--idempotency-key", "abc")
    task_id = submitted.stdout.split()[1]
    again = await cli("submit", "--agent", "demo", "later", "--idempotency-key", "abc")
    assert again.stdout.split()[1] == task_id  # same key, same task
    listed = await cli("tasks", "list")
    assert task_id in listed.stdout and "PENDING" in listed.stdout
    cancelled = await cli("tasks", "cancel", task_id)
    assert cancelled.stdout.strip().endswith("CANCELLED")
    requeued = await cli("tasks", "requeue", task_id)
    assert requeued.stdout.strip().endswith("PENDING")
    shown = await cli("tasks", "show", task_id)
    assert "task_cancelled" in shown.stdout and "task_requeued" in shown.stdout
    refused = await cli("tasks", "answer", task_id, "yes")
    assert refused.returncode == 2 and "error: invalid_state:" in refused.stderr


async def test_follow_stops_at_a_question_and_the_answer_continues_the_task(
    api: RunningApi, data_dir: Path, start_process: StartProcess
) -> None:
    worker = start_process("worker", "--agent", "demo")
    await worker.wait_for_log("worker started")
    asked = await run_cli(
        "submit",
        "--agent",
        "demo",
        "leave",
        "--input",
        json.dumps({"steps": 1, "delay": 0, "ask": "how many days?"}),
        "--follow",
        *api.flags,
        data_dir=data_dir,
    )
    assert asked.returncode == 0, asked.stderr
    task_id = asked.stdout.split()[1]
    assert "human_asked" in asked.stdout and "how many days?" in asked.stdout
    assert asked.stdout.splitlines()[-1] == f"task {task_id} INPUT_REQUIRED"
    answered = await run_cli(
        "tasks", "answer", task_id, "3", "--json", *api.flags, data_dir=data_dir
    )
    assert answered.stdout.strip() == f"task {task_id} PENDING", answered.stderr
    followed = await run_cli("tasks", "follow", task_id, *api.flags, data_dir=data_dir)
    assert followed.returncode == 0, followed.stderr
    assert f"task {task_id} DONE" in followed.stdout and '"answer": 3' in followed.stdout


async def test_following_a_task_no_worker_serves_says_so(
    db: Database,
    api: RunningApi,
    data_dir: Path,
    started_clis: list[Any],
) -> None:
    # Registered once by a worker that has been gone for an hour: not online.
    await db.execute(
        "INSERT INTO orchestrators (name, last_seen_at) VALUES ('idle', now() - interval '1 hour')"
    )
    submitted = await run_cli("submit", "--agent", "idle", "x", *api.flags, data_dir=data_dir)
    task_id = submitted.stdout.split()[1]
    warning = (
        "warning: no live worker serves agent 'idle': the task waits in the queue until one "
        "starts (processgpt worker --agent idle)"
    )
    assert submitted.returncode == 0 and submitted.stderr.strip() == warning
    follow = start_cli("tasks", "follow", task_id, *api.flags, data_dir=data_dir)
    started_clis.append(follow)
    assert follow.stderr is not None
    line = await asyncio.wait_for(asyncio.to_thread(follow.stderr.readline), 60)
    assert line.strip() == warning
    assert follow.poll() is None  # still following
    cancelled = await run_cli("tasks", "cancel", task_id, *api.flags, data_dir=data_dir)
    assert cancelled.returncode == 0, cancelled.stderr
    await wait_until(lambda: follow.poll() is not None, timeout=30)
    out, err = follow.communicate()
    assert follow.returncode == 1, err  # the task did not succeed
    assert "task_cancelled" in out and out.splitlines()[-1] == f"task {task_id} CANCELLED"
    assert err == ""  # the line came once


async def test_worker_runs_a_users_executor_by_import_path(
    api: RunningApi, data_dir: Path, start_process: StartProcess, db_url: str
) -> None:
    worker = start_process(
        "worker", "--agent", "noop", "--executor", "tests.agents.executors:NoopExecutor"
    )
    await worker.wait_for_log("worker started")
    result = await run_cli(
        "submit", "--agent", "noop", "x", "--follow", *api.flags, data_dir=data_dir
    )
    assert result.returncode == 0, result.stderr
    assert "task_working" in result.stdout and '"ok": true' in result.stdout
    bad = await run_cli(
        "worker",
        "--agent",
        "x",
        "--executor",
        "no.such.module:Thing",
        data_dir=data_dir,
        env={"DATABASE_URL": db_url},
    )
    assert bad.returncode == 2 and "error: invalid_input: cannot import" in bad.stderr

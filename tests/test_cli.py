"""The ``processgpt`` command as a user runs it: real processes, real database."""

from __future__ import annotations

import json

from processgpt.db.database import Database
from tests.support import StartProcess, cli


async def test_bad_input_is_refused_with_a_clear_error_and_nothing_written(
    db: Database, db_url: str
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
    ]
    for args, code in cases:
        result = await cli(db_url, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"error: {code}:" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert await db.fetchval("SELECT count(*) FROM todolist") == 0
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_submit_follow_prints_events_live_and_the_result(
    db_url: str, start_process: StartProcess
) -> None:
    up = start_process("up", "--concurrency", "4", env={"PROCESSGPT_API_PORT": "0"})
    await up.wait_for_log("processgpt is up")
    assert "/console#key=pgpt_" in up.log()
    result = await cli(
        db_url,
        "submit",
        "--agent",
        "demo",
        "hello there",
        "--follow",
        "--input",
        json.dumps({"steps": 2, "delay": 0.01}),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("task ") and lines[0].endswith("PENDING")
    events = [line.split()[2] for line in lines[1:] if line[:4].strip().isdigit()]
    assert events == ["task_started", "task_working", "task_working", "crew_completed"]
    assert any(line.endswith(" DONE") for line in lines)
    assert '"upper": "HELLO THERE"' in result.stdout


async def test_tasks_commands_manage_a_task(db: Database, db_url: str) -> None:
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo')")
    submitted = await cli(db_url, "submit", "--agent", "demo", "later", "--idempotency-key", "abc")
    task_id = submitted.stdout.split()[1]
    again = await cli(db_url, "submit", "--agent", "demo", "later", "--idempotency-key", "abc")
    assert again.stdout.split()[1] == task_id  # same key, same task
    listed = await cli(db_url, "tasks", "list")
    assert task_id in listed.stdout and "PENDING" in listed.stdout
    cancelled = await cli(db_url, "tasks", "cancel", task_id)
    assert cancelled.stdout.strip().endswith("CANCELLED")
    requeued = await cli(db_url, "tasks", "requeue", task_id)
    assert requeued.stdout.strip().endswith("PENDING")
    shown = await cli(db_url, "tasks", "show", task_id)
    assert "task_cancelled" in shown.stdout and "task_requeued" in shown.stdout
    refused = await cli(db_url, "tasks", "answer", task_id, "yes")
    assert refused.returncode == 2 and "error: invalid_state:" in refused.stderr


async def test_worker_runs_a_users_executor_by_import_path(
    db_url: str, start_process: StartProcess
) -> None:
    worker = start_process(
        "worker", "--agent", "noop", "--executor", "tests.agents.executors:NoopExecutor"
    )
    await worker.wait_for_log("worker started")
    result = await cli(db_url, "submit", "--agent", "noop", "x", "--follow")
    assert result.returncode == 0, result.stderr
    assert "task_working" in result.stdout and '"ok": true' in result.stdout
    bad = await cli(db_url, "worker", "--agent", "x", "--executor", "no.such.module:Thing")
    assert bad.returncode == 2 and "error: invalid_input: cannot import" in bad.stderr

"""``processgpt worker`` / ``up`` and the model endpoint: the ``llm`` agents run only with
one, and a worker that cannot work refuses to start, naming what to set."""

from __future__ import annotations

import time
from pathlib import Path

from tests.cli.conftest import run_cli
from tests.support import StartProcess


async def test_a_worker_of_llm_agents_without_an_endpoint_refuses_to_start(
    db_url: str, data_dir: Path
) -> None:
    for agent in ("llm", "deep-research"):
        started = time.monotonic()
        result = await run_cli(
            "worker", "--agent", agent, data_dir=data_dir, env={"DATABASE_URL": db_url}
        )
        assert time.monotonic() - started < 30  # it does not run, and does not hang
        assert result.returncode == 2, result.stderr
        assert f"error: invalid_configuration: the {agent!r} agent needs a model endpoint" in (
            result.stderr
        )
        assert "PROCESSGPT_LLM_BASE_URL" in result.stderr
        assert "PROCESSGPT_LLM_API_KEY" in result.stderr
        assert "Traceback" not in result.stderr

    bad = await run_cli(
        "worker",
        "--agent",
        "llm",
        data_dir=data_dir,
        env={
            "DATABASE_URL": db_url,
            "PROCESSGPT_LLM_BASE_URL": "http://127.0.0.1:9/v1",
            "PROCESSGPT_LLM_TIMEOUT": "soon",
        },
    )
    assert bad.returncode == 2
    assert "error: invalid_configuration: PROCESSGPT_LLM_TIMEOUT:" in bad.stderr


async def test_a_worker_of_the_llm_agent_starts_with_an_endpoint(
    start_process: StartProcess,
) -> None:
    worker = start_process(
        "worker",
        "--agent",
        "llm",
        env={"PROCESSGPT_LLM_BASE_URL": "http://127.0.0.1:9/v1", "PROCESSGPT_LLM_API_KEY": ""},
    )
    await worker.wait_for_log("worker started")

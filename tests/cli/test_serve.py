"""``processgpt worker`` / ``up`` and the model endpoint: the ``llm`` agents run only with
one, and a worker that cannot work refuses to start, naming what to set."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.api.test_tasks_api import wait_status
from tests.cli.conftest import run_cli
from tests.fake_llm import FakeLLM, Turn
from tests.support import StartProcess, api_url, http_mcp_server


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


async def test_a_worker_refuses_to_start_with_an_allowed_network_that_is_none(
    db_url: str, data_dir: Path
) -> None:
    result = await run_cli(
        "worker",
        "--agent",
        "demo",
        data_dir=data_dir,
        env={"DATABASE_URL": db_url, "PROCESSGPT_MCP_ALLOWED_NETWORKS": "10.0.0.0/8, not a net!"},
    )
    assert result.returncode == 2, result.stderr
    assert "error: invalid_configuration: PROCESSGPT_MCP_ALLOWED_NETWORKS:" in result.stderr
    assert "Traceback" not in result.stderr


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


async def test_api_and_worker_on_one_data_dir_share_its_secret_key(
    db: Database, start_process: StartProcess, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    """With ``--data-dir`` (and no PROCESSGPT_SECRET_KEYS) the API seals a tenant's MCP
    secrets with the key file there, and the worker opens them with the same file."""
    data_dir = tmp_path / "data"
    env = {
        "PROCESSGPT_SECRET_KEYS": "",
        "XDG_DATA_HOME": str(tmp_path / "default-data"),  # the default data dir: elsewhere
        "PROCESSGPT_MCP_ALLOWED_NETWORKS": "127.0.0.1/32",
    }
    key = (await ApiKeyRepository(db).create("acme", role=Role.ADMIN)).key
    api = start_process("api", "--data-dir", str(data_dir), env={**env, "PROCESSGPT_API_PORT": "0"})
    worker = start_process(
        "worker",
        "--agent",
        "llm",
        "--data-dir",
        str(data_dir),
        env={**env, "PROCESSGPT_LLM_BASE_URL": fake_llm.base_url, "PROCESSGPT_LLM_API_KEY": "k"},
    )
    url = await api_url(api)
    await worker.wait_for_log("worker started")
    with http_mcp_server() as mcp_url:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            added = await client.post(
                "/v1/mcp-servers",
                json={"name": "web", "url": mcp_url, "headers": {"X-Token": "sealed-value"}},
            )
            assert added.status_code == 201, added.text
            fake_llm.add(Turn(tool_calls=[("web__request_info", {})]), Turn(text="done"))
            created = await client.post("/v1/tasks", json={"agent_orch": "llm", "query": "go"})
            assert created.status_code == 201, created.text
            await wait_status(client, created.json()["id"], "DONE")
    assert (data_dir / "secret.key").exists()
    assert not (tmp_path / "default-data" / "processgpt" / "secret.key").exists()
    result = next(m["content"] for m in fake_llm.requests[-1].messages if m["role"] == "tool")
    assert json.loads(result)["headers"]["x-token"] == "sealed-value", result

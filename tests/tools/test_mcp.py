"""The MCP connection pool: connections per tenant, limits, shared connections that outlive a
transport error, the children's stderr. Real MCP server processes (tests/mcp_server.py), a
real database and worker where tasks are involved, the scripted model as the only stand-in."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from processgpt.agents.llm import LlmExecutor, LlmSettings
from processgpt.config import McpSettings
from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskStatus, TaskSubmission
from processgpt.tools.mcp import McpConnections
from tests.conftest import StartWorker
from tests.fake_llm import FakeLLM, Turn
from tests.support import wait_until

MCP_SERVER = Path(__file__).resolve().parent.parent / "mcp_server.py"
STDIO = {"command": sys.executable, "args": [str(MCP_SERVER)]}


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
async def pools() -> AsyncIterator[list[McpConnections]]:
    made: list[McpConnections] = []
    yield made
    for pool in made:
        await pool.close()


async def _call(pool: McpConnections, tenant: str, config: Any, tool: str, **args: Any) -> str:
    plan = pool.plan(tenant, config)
    assert not plan.refused, plan.refused
    toolset = await pool.toolset(plan.servers)
    assert not toolset.unavailable, toolset.unavailable
    outcome = await pool.call(toolset.tools[tool], args)
    assert outcome.error is None, outcome.error
    return outcome.text


# -- 1. connections per tenant -----------------------------------------------------------------


async def test_two_tenants_tasks_never_share_a_catalog_server_process(
    db: Database, fake_llm: FakeLLM, start_worker: StartWorker, tmp_path: Path
) -> None:
    config = _write(
        tmp_path / "mcp.json",
        {"tenantCatalog": {"memo": {**STDIO, "description": "a stateful server"}}},
    )
    pool = McpConnections(McpSettings(config=config, tool_timeout=10.0))
    executor = LlmExecutor(
        LlmSettings(base_url=fake_llm.base_url, api_key="sk-x", model="m"), connections=pool
    )
    try:
        for tenant in ("acme", "globex"):
            await db.execute(QUERIES["ensure_tenant"], tenant)
            await db.execute(
                "UPDATE tenants SET mcp = $2 WHERE id = $1",
                tenant,
                {"mcpServers": {"mem": {"catalog": "memo"}}},
            )
        await start_worker({"llm": executor})
        repo = TaskRepository(db)

        async def run(tenant: str, call: tuple[str, dict[str, Any]]) -> str:
            fake_llm.add(Turn(tool_calls=[call]), Turn(text="ok"))
            task, _ = await repo.submit(
                tenant, TaskSubmission(agent_orch="llm", query="q"), known_agents=frozenset({"llm"})
            )
            await _wait_done(repo, tenant, task.id)
            request = fake_llm.requests[-1]
            return next(m["content"] for m in request.messages if m["role"] == "tool")

        assert await run("acme", ("mem__remember", {"value": "acme-private"})) == "remembered"
        # the same entry, enabled by another tenant, is another process
        assert json.loads(await run("globex", ("mem__recall", {}))) == []
        # and the tenant's own next task finds its own process again
        assert json.loads(await run("acme", ("mem__recall", {}))) == ["acme-private"]
        assert len(pool) == 2
    finally:
        await executor.aclose()
        await pool.close()


async def test_operator_servers_are_per_tenant_unless_marked_shared(
    tmp_path: Path, pools: list[McpConnections]
) -> None:
    config = _write(
        tmp_path / "mcp.json",
        {"mcpServers": {"mine": STDIO, "common": {**STDIO, "shared": True}}},
    )
    pool = McpConnections(McpSettings(config=config))
    pools.append(pool)
    for server in ("mine", "common"):
        await _call(pool, "acme", {}, f"{server}__remember", value=f"acme-{server}")
    assert json.loads(await _call(pool, "globex", {}, "mine__recall")) == []
    assert json.loads(await _call(pool, "globex", {}, "common__recall")) == ["acme-common"]


async def test_tenants_http_servers_with_equal_configuration_get_a_session_each(
    tmp_path: Path,
) -> None:
    pool = McpConnections(McpSettings(config=None))
    try:
        tenant = {"mcpServers": {"web": {"url": "https://mcp.example.com/mcp"}}}
        keys = {
            tenant_id: pool.plan(tenant_id, tenant).servers[0].key
            for tenant_id in ("acme", "globex")
        }
        assert keys["acme"] != keys["globex"]
        assert pool.plan("acme", tenant).servers[0].key == keys["acme"]
    finally:
        await pool.close()


async def _wait_done(repo: TaskRepository, tenant: str, task_id: uuid.UUID) -> None:
    async def done() -> bool:
        task = await repo.get(tenant, task_id)
        assert task.status is not TaskStatus.FAILED, task
        return task.status is TaskStatus.DONE

    await wait_until(done, 30)

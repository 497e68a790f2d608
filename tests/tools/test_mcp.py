"""The MCP connection pool: connections per tenant, limits, shared connections that outlive a
transport error, the children's stderr. Real MCP server processes (tests/mcp_server.py), a
real database and worker where tasks are involved, the scripted model as the only stand-in."""

from __future__ import annotations

import asyncio
import json
import logging
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
from processgpt.tools import mcp_stderr
from processgpt.tools.mcp import McpConnections
from tests.conftest import StartWorker
from tests.fake_llm import FakeLLM, Turn
from tests.support import http_mcp_server, wait_until

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


# -- 7. bounds -----------------------------------------------------------------------------


def _bounded(tmp_path: Path, servers: dict[str, Any], **bounds: Any) -> McpConnections:
    config = _write(tmp_path / "mcp.json", {"mcpServers": servers})
    return McpConnections(McpSettings(config=config, **bounds), connect_timeout=30)


async def test_the_pool_stays_within_its_bounds_closing_idle_connections_first(
    tmp_path: Path, pools: list[McpConnections]
) -> None:
    pool = _bounded(
        tmp_path,
        {name: {**STDIO, "env": {"N": name}} for name in ("s1", "s2", "s3")},
        max_connections=3,
        max_connections_per_tenant=2,
    )
    pools.append(pool)
    servers = pool.plan("a", {}).servers
    held_a = await pool.toolset(servers)
    # two of a's three servers fit; the third is reported, the worker does not grow
    assert len(held_a.unavailable) == 1 and len(pool) == 2
    assert "for this tenant (2)" in next(iter(held_a.unavailable.values()))
    pool.release(held_a)

    held_b = await pool.toolset(pool.plan("b", {}).servers[:1])
    assert not held_b.unavailable and len(pool) == 3
    # full: c's connection replaces the least recently used one nobody holds (one of a's)
    held_c = await pool.toolset(pool.plan("c", {}).servers[:1])
    assert not held_c.unavailable and len(pool) == 3
    held_d = await pool.toolset(pool.plan("d", {}).servers[:1])
    assert not held_d.unavailable and len(pool) == 3
    tenants = sorted(c.server.tenant_id or "" for c in pool._connections.values())
    assert tenants == ["b", "c", "d"]
    # every connection is held by a running task: the next tenant's servers are unavailable
    held_e = await pool.toolset(pool.plan("e", {}).servers[:1])
    assert len(pool) == 3 and "(3), all in use" in held_e.unavailable["s1"]
    # and b's own tools keep working
    outcome = await pool.call(held_b.tools["s1__add"], {"a": 1, "b": 2})
    assert outcome.error is None and outcome.text == "3"


async def test_connections_start_one_at_a_time_when_max_connecting_is_one(
    tmp_path: Path, pools: list[McpConnections]
) -> None:
    trace = tmp_path / "starts.log"
    slow_start = {
        "command": "/bin/sh",
        "args": [
            "-c",
            f'echo start >> {trace}; sleep 0.5; echo end >> {trace}; exec "$0" "$1"',
            sys.executable,
            str(MCP_SERVER),
        ],
    }
    servers = {f"s{i}": {**slow_start, "env": {"N": str(i)}} for i in range(3)}
    pool = _bounded(tmp_path, servers, max_connecting=1)
    pools.append(pool)
    toolset = await pool.toolset(pool.plan("a", {}).servers)
    assert not toolset.unavailable, toolset.unavailable
    # each started (and finished its handshake) before the next began
    assert trace.read_text().split() == ["start", "end"] * 3


async def test_tool_lists_and_results_are_cut_at_their_bounds(
    tmp_path: Path, pools: list[McpConnections]
) -> None:
    listed = _bounded(tmp_path, {"s": STDIO}, max_tools=3)
    pools.append(listed)
    assert len((await listed.toolset(listed.plan("a", {}).servers)).tools) == 3
    pool = _bounded(tmp_path, {"s": STDIO}, max_result_chars=1000)
    pools.append(pool)
    tools = await pool.toolset(pool.plan("a", {}).servers)
    assert len(tools.tools) > 3
    outcome = await pool.call(tools.tools["s__big"], {"size": 50_000})
    assert outcome.error is None
    assert outcome.text.startswith("x" * 1000) and len(outcome.text) < 1100
    assert "49000 more characters cut" in outcome.text


async def test_a_tenants_http_server_cannot_send_a_message_past_the_bound(
    pools: list[McpConnections],
) -> None:
    pool = McpConnections(
        McpSettings(allowed_networks="127.0.0.1/32", max_message_bytes=64 * 1024),
        connect_timeout=30,
    )
    pools.append(pool)
    with http_mcp_server() as url:
        plan = pool.plan("a", {"mcpServers": {"web": {"url": url}}})
        toolset = await pool.toolset(plan.servers)
        small = await pool.call(toolset.tools["web__big"], {"size": 1000})
        assert small.error is None and small.text == "x" * 1000
        huge = await pool.call(toolset.tools["web__big"], {"size": 200_000})
        assert huge.error is not None and "x" * 1000 not in huge.text


async def test_a_transport_error_on_a_shared_connection_lets_other_calls_finish(
    tmp_path: Path, pools: list[McpConnections]
) -> None:
    pool = _bounded(tmp_path, {"s": STDIO})
    pools.append(pool)
    toolset = await pool.toolset(pool.plan("a", {}).servers)
    slow = asyncio.create_task(pool.call(toolset.tools["s__slow"], {"seconds": 1.5}))
    await asyncio.sleep(0.3)  # in flight
    # a call that fails in the client (its arguments cannot be sent) makes the pool give up
    # the connection
    broken = await pool.call(toolset.tools["s__add"], {"a": object(), "b": 1})
    assert broken.error is not None
    assert len(pool) == 0  # the next call opens another connection
    outcome = await slow
    assert outcome.error is None and outcome.text == "slept"
    again = await pool.call(toolset.tools["s__add"], {"a": 1, "b": 1})
    assert again.error is None and again.text == "2"


# -- 8. the children's stderr ------------------------------------------------------------------


async def test_a_stdio_servers_stderr_is_logged_scrubbed_and_bounded(
    tmp_path: Path, pools: list[McpConnections], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "planted-stderr-secret-6d1f"
    server = {**STDIO, "env": {"SECRET_TOKEN": secret, "PROCESSGPT_TEST_MCP_STDERR": "500"}}
    pool = _bounded(tmp_path, {"chatty": server})
    pools.append(pool)
    caplog.set_level(logging.INFO, logger="processgpt.mcp.server")
    toolset = await pool.toolset(pool.plan("acme", {}).servers)
    assert not toolset.unavailable
    await pool.close()  # the server stops; its last lines are read
    records = [r for r in caplog.records if r.name == "processgpt.mcp.server.chatty"]
    lines = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert lines[0] == "stderr tenant=acme line=starting with SECRET_TOKEN=*** (bare: ***)"
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert lines[1].endswith("y… (cut)") and len(lines[1]) < 1100
    assert len(lines) == mcp_stderr.LINES_PER_WINDOW  # the rest counted, not logged
    dropped = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert dropped == [
        f"stderr lines dropped tenant=acme dropped={502 - mcp_stderr.LINES_PER_WINDOW} "
        f"(more than {mcp_stderr.LINES_PER_WINDOW} a minute)"
    ]

"""The ``llm`` agent with profiles and MCP servers managed through the API: a real api process,
an in-process llm worker (started once, never restarted), a real MCP server over stdio (an
entry of the operator's catalog the tenant switches on), and the scripted OpenAI-compatible
server as the model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from processgpt.agents.llm import LlmExecutor, LlmSettings
from processgpt.config import McpSettings
from processgpt.db.database import Database
from processgpt.tools.mcp import McpConnections
from tests.api.conftest import Api
from tests.api.test_tasks_api import wait_status
from tests.conftest import StartWorker
from tests.fake_llm import FakeLLM, Turn

ENV_SECRET = "mcp-env-secret-0123456789"


@pytest.fixture
async def llm_worker(
    api: Api, fake_llm: FakeLLM, start_worker: StartWorker
) -> AsyncIterator[LlmExecutor]:
    """One in-process llm worker for the whole test, with the api's mcp.json (no server for
    every task; the ``calc`` catalog entry)."""
    pool = McpConnections(McpSettings(config=api.mcp_config, tool_timeout=10.0))
    executor = LlmExecutor(
        LlmSettings(
            base_url=fake_llm.base_url,
            api_key="sk-test",
            model="env-model",
            instructions="Environment instructions.",
        ),
        connections=pool,
    )
    await start_worker({"llm": executor})
    yield executor
    await executor.aclose()
    await pool.close()


def _calc_server() -> dict[str, Any]:
    return {
        "name": "calc",
        "catalog": "calc",
        "env": {"PROCESSGPT_TEST_MCP_TAG": "from-api", "SECRET_TOKEN": ENV_SECRET},
    }


async def _run(client: httpx.AsyncClient, agent: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/tasks", json={"agent_orch": agent, "query": "q", **body})
    assert response.status_code == 201, response.text
    return await wait_status(client, response.json()["id"], "DONE")


async def _events(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    page = await client.get(f"/v1/tasks/{task_id}/events")
    items: list[dict[str, Any]] = page.json()["items"]
    return items


async def test_mcp_servers_added_and_disabled_through_the_api_apply_to_the_next_task(
    api: Api, db: Database, fake_llm: FakeLLM, llm_worker: LlmExecutor
) -> None:
    async with api.client() as client:
        # no server yet: only the built-in tool
        fake_llm.add(Turn(text="no tools yet"))
        await _run(client, "llm")
        assert fake_llm.requests[-1].tool_names == ["ask_human"]

        added = await client.post("/v1/mcp-servers", json=_calc_server())
        assert added.status_code == 201, added.text
        fake_llm.add(Turn(tool_calls=[("calc__lookup", {"q": "mcp"})]), Turn(text="looked up"))
        task = await _run(client, "llm")
        assert task["output"] == "looked up"
        assert {"calc__add", "calc__lookup", "calc__fail"} <= set(fake_llm.requests[-2].tool_names)
        tool_messages = [m for m in fake_llm.requests[-1].messages if m["role"] == "tool"]
        assert "the Model Context Protocol [from-api]" in tool_messages[0]["content"]
        log = await _events(client, task["id"])
        assert any(e["event_type"] == "tool_usage_finished" for e in log)
        assert all(ENV_SECRET not in str(e["data"]) for e in log)

        disabled = await client.post("/v1/mcp-servers/calc/disable")
        assert disabled.status_code == 200 and disabled.json()["enabled"] is False
        fake_llm.add(Turn(text="tools gone"))
        await _run(client, "llm")
        assert fake_llm.requests[-1].tool_names == ["ask_human"]

        assert (await client.post("/v1/mcp-servers/calc/enable")).status_code == 200
        fake_llm.add(Turn(text="tools back"))
        await _run(client, "llm")
        assert "calc__add" in fake_llm.requests[-1].tool_names

        assert (await client.delete("/v1/mcp-servers/calc")).status_code == 204
        fake_llm.add(Turn(text="removed"))
        await _run(client, "llm")
        assert fake_llm.requests[-1].tool_names == ["ask_human"]


async def test_a_task_under_a_profile_runs_with_its_model_instructions_and_tools(
    api: Api, fake_llm: FakeLLM, llm_worker: LlmExecutor
) -> None:
    async with api.client() as client:
        assert (await client.post("/v1/mcp-servers", json=_calc_server())).status_code == 201
        profile = {
            "name": "analyst",
            "agent_orch": "llm",
            "model": "profile-model",
            "instructions": "You are the analyst profile.",
            "persona": "Speaks like a pirate.",
            "skills": ["표 작성", "summaries in one line"],
            "tools": ["calc__add"],
        }
        assert (await client.post("/v1/agents", json=profile)).status_code == 201

        fake_llm.add(Turn(text="arr"))
        task = await _run(client, "analyst")
        assert task["agent_orch"] == "llm" and task["agent_profile"] == "analyst"
        request = fake_llm.requests[-1]
        assert request.body["model"] == "profile-model"
        system = request.messages[0]
        assert system["role"] == "system"
        assert "You are the analyst profile." in system["content"]
        assert "Speaks like a pirate." in system["content"]
        assert "- 표 작성\n- summaries in one line" in system["content"]
        assert "Environment instructions." not in system["content"]
        assert sorted(request.tool_names) == ["ask_human", "calc__add"]  # filtered

        # the task's input overrides the profile; the persona stays
        fake_llm.add(Turn(text="overridden"))
        await _run(client, "analyst", input={"model": "input-model", "instructions": "Input."})
        request = fake_llm.requests[-1]
        assert request.body["model"] == "input-model"
        assert "Input." in request.messages[0]["content"]
        assert "Speaks like a pirate." in request.messages[0]["content"]

        # a profile edit applies to the next task
        patched = await client.patch(
            "/v1/agents/analyst",
            json={"model": "edited", "tools": [], "persona": "Calm.", "skills": ["차트"]},
        )
        assert patched.status_code == 200, patched.text
        fake_llm.add(Turn(text="edited"))
        await _run(client, "analyst")
        assert fake_llm.requests[-1].body["model"] == "edited"
        edited_system = fake_llm.requests[-1].messages[0]["content"]
        assert "Calm." in edited_system and "- 차트" in edited_system
        assert "pirate" not in edited_system and "표 작성" not in edited_system
        assert {"calc__add", "calc__lookup"} <= set(fake_llm.requests[-1].tool_names)

        # without a profile: the environment's defaults
        fake_llm.add(Turn(text="plain"))
        await _run(client, "llm")
        request = fake_llm.requests[-1]
        assert request.body["model"] == "env-model"
        assert "Environment instructions." in request.messages[0]["content"]
        assert "pirate" not in request.messages[0]["content"]

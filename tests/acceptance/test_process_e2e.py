"""The whole story of a process task, end to end with real parts: a ``processgpt api``
process, two ``processgpt worker`` processes (``llm`` and ``demo``, the delegate's target), a
real MCP server process over stdio (from an ``mcp.json`` the llm worker reads), and the
scripted OpenAI-compatible server as the model (the only stand-in).

The ``llm`` task of a new process instance fills in a form: it calls an MCP tool, delegates
to the ``demo`` agent, asks a person, gets the answer through the API and finishes with a
JSON object with the form's fields, stored as ``{form_id: {...}}``.

Setup note: there is no API for form definitions yet, so the form is inserted with SQL."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from tests.fake_llm import FakeLLM, Turn
from tests.support import StartProcess, start_worker_process, wait_until

MCP_SERVER = Path(__file__).resolve().parent.parent / "mcp_server.py"
TENANT = "acme"
FORM_ID = "vendor_intake"
FORM_FIELDS: list[dict[str, Any]] = [
    {"key": "vendor", "text": "Vendor name", "type": "text"},
    {"key": "summary", "text": "What the vendor does", "type": "text"},
    {"key": "priority", "text": "Priority", "type": "select", "options": ["low", "high"]},
]
RESULT = {"vendor": "ProcessGPT", "summary": "a Postgres-native agent runtime", "priority": "high"}
ANSWER = "high, we need it this quarter"


async def _task(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    assert task["status"] != "FAILED", task
    return task


async def _wait_status(client: httpx.AsyncClient, task_id: str, status: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        task = await _task(client, task_id)
        return task if task["status"] == status else None

    result: dict[str, Any] = await wait_until(reached, 30)
    return result


async def _events(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = (await client.get(f"/v1/tasks/{task_id}/events", params={"after": after})).json()
        if not page["items"]:
            return items
        items.extend(page["items"])
        after = page["next_after"]


async def _follow_until_done(client: httpx.AsyncClient, task_id: str, after: int) -> list[str]:
    """Follow the task's SSE stream (from ``after``) until it ends; returns its data lines."""
    lines: list[str] = []
    headers = {"Last-Event-ID": str(after)} if after else {}
    async with (
        asyncio.timeout(30),
        client.stream("GET", f"/v1/tasks/{task_id}/stream", headers=headers) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                lines.append(line.removeprefix("data: "))
                if lines[-1] == "[DONE]":
                    return lines
    raise AssertionError(f"the stream ended without [DONE]: {lines}")


def _tool_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["role"] == "tool"]


async def test_a_process_task_uses_mcp_delegates_asks_a_human_and_fills_the_form(
    db: Database, start_process: StartProcess, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    # -- setup: a tenant with a key, its form, the api and the two workers --------------------
    key = (await ApiKeyRepository(db).create(TENANT)).key
    await db.execute(  # no API for form definitions yet
        "INSERT INTO form_def (id, tenant_id, fields_json) VALUES ($1, $2, $3)",
        FORM_ID,
        TENANT,
        FORM_FIELDS,
    )
    mcp_config = tmp_path / "mcp.json"
    mcp_config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "calc": {
                        "command": sys.executable,
                        "args": [str(MCP_SERVER)],
                        "env": {"PROCESSGPT_TEST_MCP_TAG": "e2e"},
                    }
                }
            }
        )
    )
    api = start_process("api", env={"PROCESSGPT_API_PORT": "0", "PROCESSGPT_SSE_HEARTBEAT": "0.5"})
    llm_worker = start_process(
        "worker",
        "--agent",
        "llm",
        "--concurrency",
        "2",
        env={
            "PROCESSGPT_LLM_BASE_URL": fake_llm.base_url,
            "PROCESSGPT_LLM_API_KEY": "sk-e2e-test",
            "PROCESSGPT_LLM_MODEL": "e2e-model",
            "PROCESSGPT_MCP_CONFIG": str(mcp_config),
            "PROCESSGPT_MCP_TOOL_TIMEOUT": "20",
            "PROCESSGPT_DELEGATE_TIMEOUT": "30",
        },
    )
    await start_worker_process(start_process, agent="demo")
    await api.wait_for_log("api listening url=")
    await llm_worker.wait_for_log("worker started")
    match = re.search(r"api listening url=(\S+)", api.log())
    assert match is not None

    fake_llm.add(
        Turn(tool_calls=[("calc__lookup", {"q": "processgpt"})]),
        Turn(tool_calls=[("delegate", {"agent": "demo", "message": "check vendor"})]),
        Turn(
            text="I need a person for this.",
            tool_calls=[
                (
                    "ask_human",
                    {"question": "Which priority?", "type": "select", "options": ["low", "high"]},
                )
            ],
        ),
        Turn(text=json.dumps(RESULT)),
    )

    async with httpx.AsyncClient(
        base_url=match[1], headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        # -- start the process; the first task is the llm agent's, with the form ---------------
        started = await client.post(
            "/v1/processes",
            json={
                "name": "vendor intake",
                "task": {
                    "agent_orch": "llm",
                    "tool": f"formHandler:{FORM_ID}",
                    "query": "Fill in the vendor intake form for ProcessGPT.",
                },
            },
        )
        assert started.status_code == 201, started.text
        view = started.json()
        proc_inst_id = view["process"]["proc_inst_id"]
        (first,) = view["tasks"]
        task_id = first["id"]

        # -- the agent asks a person; the answer comes through the API ------------------------
        asked = await _wait_status(client, task_id, "INPUT_REQUIRED")
        assert asked["output"] is None
        before = await _events(client, task_id)
        question = next(e for e in before if e["event_type"] == "human_asked")
        assert "Which priority?" in json.dumps(question["data"])
        answered = await client.post(f"/v1/tasks/{task_id}/input", json={"answer": ANSWER})
        assert answered.status_code == 200, answered.text
        assert answered.json()["status"] == "PENDING"

        stream = await _follow_until_done(client, task_id, before[-1]["seq"])
        assert stream[-1] == "[DONE]"
        task = await _wait_status(client, task_id, "DONE")

        # -- the result is the form, stored under its id --------------------------------------
        assert task["output"] == {FORM_ID: RESULT}

        # -- the event log -------------------------------------------------------------------
        log = await _events(client, task_id)
        assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
        kinds = [e["event_type"] for e in log]
        started_tools = [e["data"] for e in log if e["event_type"] == "tool_usage_started"]
        finished_tools = [e["data"] for e in log if e["event_type"] == "tool_usage_finished"]
        assert [d["tool_name"] for d in started_tools] == ["calc__lookup", "delegate", "ask_human"]
        by_name = {d["tool_name"]: d for d in finished_tools}
        assert set(by_name) == {"calc__lookup", "delegate", "ask_human"}
        for start in started_tools:
            assert by_name[start["tool_name"]]["tool_call_id"] == start["tool_call_id"]
        assert "a Postgres-native agent runtime [e2e]" in json.dumps(by_name["calc__lookup"])
        assert not by_name["calc__lookup"].get("error")
        assert by_name["delegate"]["output"]["upper"] == "CHECK VENDOR"
        assert ANSWER in json.dumps(by_name["ask_human"])
        asked_at, answered_at = kinds.index("human_asked"), kinds.index("human_response")
        assert asked_at < answered_at
        assert ANSWER in json.dumps(log[answered_at]["data"])
        assert kinds.index("tool_usage_finished") < asked_at  # the MCP tool ran before asking

        # -- the delegated child: a demo task of the same process, DONE -----------------------
        children = (await client.get("/v1/tasks", params={"agent_orch": "demo"})).json()["items"]
        (child,) = children
        assert child["status"] == "DONE"
        assert child["input"] == {"delegated_by": task_id}
        assert child["query"] == "check vendor"
        assert child["proc_inst_id"] == proc_inst_id
        assert child["output"] == by_name["delegate"]["output"]

        # -- what the model received -----------------------------------------------------------
        assert len(fake_llm.requests) == 4
        first_request = fake_llm.requests[0]
        assert {"calc__lookup", "ask_human", "delegate"} <= set(first_request.tool_names)
        assert first_request.body["model"] == "e2e-model"
        assert first_request.body["response_format"] == {"type": "json_object"}
        assert first_request.headers["authorization"] == "Bearer sk-e2e-test"
        system = first_request.messages[0]["content"]
        assert all(field["key"] in system for field in FORM_FIELDS)
        after_mcp, after_delegate, after_answer = (
            _tool_messages(r.messages) for r in fake_llm.requests[1:]
        )
        assert "a Postgres-native agent runtime [e2e]" in after_mcp[-1]["content"]
        assert json.loads(after_delegate[-1]["content"]) == child["output"]
        assert ANSWER in after_answer[-1]["content"]
        assert [m["content"] for m in after_answer[:2]] == [
            after_mcp[-1]["content"],
            after_delegate[-1]["content"],
        ]

        # -- the process lists its tasks, all DONE --------------------------------------------
        process = (await client.get(f"/v1/processes/{proc_inst_id}")).json()
        listed = {t["id"]: t for t in process["tasks"]}
        assert listed[task_id]["status"] == "DONE"
        assert listed[task_id]["output"] == {FORM_ID: RESULT}
        assert listed[child["id"]]["status"] == "DONE"

"""The ``llm`` agent end to end: an in-process worker and a real database, a real MCP server
(stdio and streamable HTTP), and a scripted OpenAI-compatible server as the model."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from processgpt.agents import registry
from processgpt.agents.llm import LlmExecutor, LlmSettings
from processgpt.config import McpSettings
from processgpt.db.database import Database
from processgpt.db.secret_box import SecretBox, new_key
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskStatus, TaskSubmission
from processgpt.tools.mcp import McpConnections, function_name
from processgpt.tools.mcp_config import OperatorConfig, plan_for_task
from processgpt.tools.netguard import NetworkPolicy
from tests.conftest import StartWorker
from tests.fake_llm import FakeLLM, Turn
from tests.support import assert_gap_free, wait_until

TENANT = "default"
API_KEY = "sk-test-0123456789abcdefSECRET"
MCP_SERVER = Path(__file__).resolve().parent.parent / "mcp_server.py"


# -- fixtures --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def http_mcp_url() -> Iterator[str]:
    """A real MCP server process on streamable HTTP."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(MCP_SERVER), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "PROCESSGPT_TEST_MCP_TAG": "http"},
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("the MCP HTTP server did not start") from None
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


def _stdio_config() -> dict[str, Any]:
    return {
        "command": sys.executable,
        "args": [str(MCP_SERVER)],
        "env": {"PROCESSGPT_TEST_MCP_TAG": "stdio"},
    }


StartLlm = Callable[..., Awaitable[LlmExecutor]]


@pytest.fixture
async def start_llm(
    fake_llm: FakeLLM, tmp_path: Path, start_worker: StartWorker
) -> AsyncIterator[StartLlm]:
    """``await start_llm(mcp_servers={...}, **settings)``: an in-process worker running an
    llm executor that talks to the fake model, with an mcp.json file holding
    ``mcp_servers``; tenants' servers may be on 127.0.0.1 (where the test servers are)."""
    made: list[LlmExecutor] = []
    pools: list[McpConnections] = []

    async def start(mcp_servers: dict[str, Any] | None = None, **settings: Any) -> LlmExecutor:
        config = tmp_path / "mcp.json"
        config.write_text(json.dumps({"mcpServers": mcp_servers or {}}))
        settings.setdefault("base_url", fake_llm.base_url)
        settings.setdefault("api_key", API_KEY)
        settings.setdefault("model", "fake-model")
        pool = McpConnections(
            McpSettings(config=config, tool_timeout=10.0, allowed_networks="127.0.0.1/32")
        )
        pools.append(pool)
        executor = LlmExecutor(LlmSettings(**settings), connections=pool)
        made.append(executor)
        await start_worker({"llm": executor})
        return executor

    yield start
    for executor in made:
        await executor.aclose()
    for pool in pools:
        await pool.close()


async def submit(repo: TaskRepository, query: str = "q", **fields: Any) -> uuid.UUID:
    task, _ = await repo.submit(
        TENANT,
        TaskSubmission(agent_orch="llm", query=query, **fields),
        known_agents=frozenset({"llm"}),
    )
    return task.id


async def wait_status(repo: TaskRepository, task_id: uuid.UUID, *statuses: TaskStatus) -> Any:
    async def reached() -> Any:
        task = await repo.get(TENANT, task_id)
        return task if task.status in statuses else None

    return await wait_until(reached, 20)


async def events(db: Database, task_id: uuid.UUID) -> list[tuple[str, Any]]:
    rows = await assert_gap_free(db, task_id)
    return [(r["event_type"], r["data"]) for r in rows]


# -- tests -----------------------------------------------------------------------------------


async def test_streamed_text_is_coalesced_and_becomes_the_result(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_llm: StartLlm,
) -> None:
    answer = "Hello! This answer is streamed to the event log in many small pieces."
    fake_llm.add(Turn(text=answer, chunk_size=3))
    await start_llm()
    task_id = await submit(repo, "say hello", input={"instructions": "Be brief."})
    task = await wait_status(repo, task_id, TaskStatus.DONE)
    assert task.output == answer

    log = await events(db, task_id)
    deltas = [data["text"] for kind, data in log if kind == "text_delta"]
    assert "".join(deltas) == answer
    assert 1 <= len(deltas) < len(answer) // 3  # coalesced, not one row per chunk
    kinds = [kind for kind, _ in log]
    assert kinds[0] == "step_started" and kinds[-1] == "crew_completed"
    usage = next(data["usage"] for kind, data in log if kind == "step_finished")
    assert usage["total_tokens"] > 0 and usage["model"] == "fake-model"

    (request,) = fake_llm.requests
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == "fake-model" and request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.messages[0]["role"] == "system" and "Be brief." in request.messages[0]["content"]
    assert request.messages[-1] == {"role": "user", "content": "say hello"}
    assert request.tool_names == ["ask_human"]
    assert "response_format" not in request.body


async def test_mcp_tools_over_stdio_and_http_and_a_failing_tool(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_llm: StartLlm,
    http_mcp_url: str,
) -> None:
    # the stdio server comes from mcp.json, the HTTP one from the tenant's configuration
    await db.execute(
        "UPDATE tenants SET mcp = $1 WHERE id = 'default'",
        {"mcpServers": {"search": {"url": http_mcp_url, "headers": {"X-Token": "hdr-secret"}}}},
    )
    fake_llm.add(
        Turn(tool_calls=[("calc__add", {"a": 20, "b": 22}), ("search__lookup", {"q": "mcp"})]),
        Turn(tool_calls=[("calc__fail", {}), ("nope__missing", {})]),
        Turn(text="20 + 22 = 42; MCP is the Model Context Protocol."),
    )
    agent = await start_llm(mcp_servers={"calc": _stdio_config()})
    task_id = await submit(
        repo,
        "add and look up",
        input={"history": [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "hello"}]},
    )
    task = await wait_status(repo, task_id, TaskStatus.DONE)
    assert task.output == "20 + 22 = 42; MCP is the Model Context Protocol."

    first, second, third = fake_llm.requests
    assert {"calc__add", "calc__lookup", "calc__fail", "search__lookup", "ask_human"} <= set(
        first.tool_names
    )
    assert [m["role"] for m in first.messages] == ["system", "user", "assistant", "user"]
    # the tool results went back to the model, in order, with the calls' ids
    tool_messages = [m for m in second.messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ["42", "the Model Context Protocol [http]"]
    calls = second.messages[-3]["tool_calls"]
    assert [c["id"] for c in calls] == [m["tool_call_id"] for m in tool_messages]
    assert json.loads(calls[0]["function"]["arguments"]) == {"a": 20, "b": 22}
    failures = [m["content"] for m in third.messages[-2:]]
    assert failures[0].startswith("Error:") and "always fails" in failures[0]
    assert "no tool named 'nope__missing'" in failures[1]

    log = await events(db, task_id)
    started = [d for k, d in log if k == "tool_usage_started"]
    finished = [d for k, d in log if k == "tool_usage_finished"]
    assert [d["tool_name"] for d in started] == [
        "calc__add",
        "search__lookup",
        "calc__fail",
        "nope__missing",
    ]
    assert started[0]["input"] == {"a": 20, "b": 22}
    assert finished[0]["output"] == {"result": 42}
    assert "always fails" in finished[2]["error"] and "output" not in finished[2]
    assert [d["tool_call_id"] for d in started] == [d["tool_call_id"] for d in finished]
    assert [k for k, _ in log].count("step_started") == 3
    assert "hdr-secret" not in json.dumps([d for _, d in log])

    # the connections are pooled: a second task reuses them
    assert len(agent.connections) == 2
    fake_llm.add(Turn(tool_calls=[("calc__add", {"a": 1, "b": 1})]), Turn(text="2"))
    second_id = await submit(repo, "again")
    assert (await wait_status(repo, second_id, TaskStatus.DONE)).output == "2"
    assert len(agent.connections) == 2


async def test_max_steps_makes_the_last_step_answer_without_tools(
    repo: TaskRepository, fake_llm: FakeLLM, start_llm: StartLlm
) -> None:
    fake_llm.add(
        Turn(tool_calls=[("calc__add", {"a": 1, "b": 2})]),
        Turn(tool_calls=[("calc__add", {"a": 3, "b": 4})]),
        Turn(text="out of steps: 3 and 7"),
    )
    await start_llm(mcp_servers={"calc": _stdio_config()})
    task_id = await submit(repo, "count", input={"max_steps": 3})
    task = await wait_status(repo, task_id, TaskStatus.DONE)
    assert task.output == "out of steps: 3 and 7"
    assert len(fake_llm.requests) == 3
    assert "calc__add" in fake_llm.requests[1].tool_names
    assert "tools" not in fake_llm.requests[2].body


async def test_rate_limit_is_retried_by_the_task_retry_policy(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_llm: StartLlm,
) -> None:
    fake_llm.add(
        Turn(status=429, error="slow down", headers={"retry-after": "0.2"}),
        Turn(text="fine now"),
    )
    await start_llm()
    task_id = await submit(repo, "hello")
    task = await wait_status(repo, task_id, TaskStatus.DONE)
    assert task.output == "fine now" and task.attempts == 2
    errors = [d for k, d in await events(db, task_id) if k == "error"]
    assert len(errors) == 1 and errors[0]["retrying"] is True
    assert errors[0]["code"] == "retry_later" and "HTTP 429" in errors[0]["message"]


async def test_an_auth_error_fails_at_once_without_the_key(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_llm: StartLlm,
) -> None:
    fake_llm.add(Turn(status=401, error=f"Incorrect API key provided: {API_KEY}"))
    await start_llm()
    task_id = await submit(repo, "hello", max_attempts=3)
    task = await wait_status(repo, task_id, TaskStatus.FAILED)
    assert task.attempts == 1 and len(fake_llm.requests) == 1
    assert task.error["code"] == "model_request_rejected"
    assert "HTTP 401" in task.error["message"] and "Incorrect API key" in task.error["message"]
    rows = await db.fetch("SELECT data::text AS d FROM events WHERE todo_id = $1", task_id)
    for text in [json.dumps(task.error), *(r["d"] for r in rows)]:
        assert API_KEY not in text and API_KEY[-8:] not in text


async def test_a_form_task_returns_json_stored_under_the_form_id(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_llm: StartLlm,
) -> None:
    await db.execute(
        "INSERT INTO form_def (id, tenant_id, fields_json) VALUES ('leave', 'default', $1)",
        [{"key": "days", "text": "Days off", "type": "number"}, {"key": "reason", "text": "Why"}],
    )
    fake_llm.add(
        Turn(text="Sure, here it is."),  # not JSON: the agent asks again
        Turn(text='```json\n{"days": 3, "reason": "holiday"}\n```'),
    )
    await start_llm()
    task_id = await submit(repo, "3 days of holiday", tool="formHandler:leave")
    task = await wait_status(repo, task_id, TaskStatus.DONE)
    assert task.output == {"leave": {"days": 3, "reason": "holiday"}}
    first, second = fake_llm.requests
    assert first.body["response_format"] == {"type": "json_object"}
    system = first.messages[0]["content"]
    assert "- days (number): Days off" in system and "- reason (text): Why" in system
    assert second.messages[-1]["role"] == "user" and "JSON object" in second.messages[-1]["content"]


async def test_ask_human_waits_for_the_answer_and_the_model_continues(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_llm: StartLlm,
) -> None:
    fake_llm.add(
        Turn(
            text="I need to ask.",
            tool_calls=[
                ("calc__add", {"a": 2, "b": 2}),
                (
                    "ask_human",
                    {"question": "Which colour?", "type": "select", "options": ["red", "blue"]},
                ),
            ],
        ),
        Turn(text="You chose blue; 2 + 2 = 4."),
    )
    await start_llm(mcp_servers={"calc": _stdio_config()})
    task_id = await submit(repo, "pick a colour")
    await wait_status(repo, task_id, TaskStatus.INPUT_REQUIRED)
    asked = await db.fetchrow(
        "SELECT job_id, data FROM events WHERE todo_id = $1 AND event_type = 'human_asked'",
        task_id,
    )
    assert asked is not None and asked["job_id"].startswith("human_asked_")
    assert asked["data"] == {
        "role": "agent",
        "text": "Which colour?",
        "type": "select",
        "options": ["red", "blue"],
    }

    await repo.answer(TENANT, task_id, "blue")
    task = await wait_status(repo, task_id, TaskStatus.DONE)
    assert task.output == "You chose blue; 2 + 2 = 4."
    first, second = fake_llm.requests
    # the conversation continues: the same messages, the tool result, then the answer
    assert second.messages[: len(first.messages)] == first.messages
    assistant, add_result, answer = second.messages[len(first.messages) :]
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["calc__add", "ask_human"]
    assert add_result["content"] == "4"
    assert answer == {
        "role": "tool",
        "tool_call_id": assistant["tool_calls"][1]["id"],
        "content": "blue",
    }
    log = await events(db, task_id)
    ask_results = [
        d for k, d in log if k == "tool_usage_finished" and d["tool_name"] == "ask_human"
    ]
    assert ask_results == [
        {
            "tool_call_id": assistant["tool_calls"][1]["id"],
            "tool_name": "ask_human",
            "output": "blue",
        }
    ]


# -- units: configuration and naming ---------------------------------------------------------


def test_tool_names_are_prefixed_sanitised_and_unique() -> None:
    assert function_name("search", "lookup") == "search__lookup"
    assert function_name("my server", "a.b/c") == "my_server__a_b_c"
    long = function_name("s" * 40, "t" * 40)
    assert len(long) == 64
    other = function_name("s" * 40, "t" * 41, {long})
    assert other != long and len(other) <= 64


def test_mcp_config_merges_file_and_tenant_and_hides_secrets(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "a": {"command": "run-a", "env": {"TOKEN": "env-secret"}},
                    "b": {"url": "http://user:pw@host/mcp?key=q-secret"},
                    "off": {"command": "x", "disabled": True},
                    "bad": {"args": ["no command"]},
                }
            }
        )
    )
    operator = OperatorConfig.read(path)
    box = SecretBox([new_key()])
    policy = NetworkPolicy()

    def plan(tenant: Any) -> dict[str, Any]:
        found = plan_for_task(tenant, tenant_id=TENANT, operator=operator, box=box, policy=policy)
        return {s.name: s for s in found.servers}

    tenant = {"mcpServers": {"b": {"url": "https://h/mcp", "headers": {"A": "hdr-secret"}}}}
    servers = plan(tenant)
    assert set(servers) == {"a", "b"}
    assert servers["b"].url == "https://h/mcp" and servers["b"].guarded  # the tenant wins
    assert not servers["a"].guarded and servers["a"].origin == "operator"
    shown = repr(list(servers.values())) + servers["a"].describe()
    assert "env-secret" not in shown and "hdr-secret" not in shown
    file_only = plan(None)
    assert "pw" not in file_only["b"].describe() and "q-secret" not in file_only["b"].describe()
    assert servers["a"].key != file_only["b"].key
    changed = OperatorConfig.parse(
        {"mcpServers": {"a": {"command": "run-a", "env": {"TOKEN": "new"}}}}
    ).servers["a"]
    assert changed.key != servers["a"].key


async def test_an_unreachable_server_only_loses_its_tools(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "gone": {"command": "/nonexistent/mcp-server"},
                    "calc": _stdio_config(),
                }
            }
        )
    )
    pool = McpConnections(McpSettings(config=config), connect_timeout=5)
    try:
        toolset = await pool.toolset(pool.plan(TENANT, None).servers)
        assert "gone" in toolset.unavailable and "calc__add" in toolset.tools
        outcome = await pool.call(toolset.tools["calc__slow"], {"seconds": 5}, seconds=0.3)
        assert outcome.error is not None and "did not answer" in outcome.error
    finally:
        await pool.close()


def test_up_runs_llm_only_when_configured() -> None:
    assert "llm" in registry.BUILTINS
    assert "llm" not in registry.available_for_up(LlmSettings(base_url=None, api_key=None))
    assert "llm" in registry.available_for_up(LlmSettings(base_url="http://x/v1"))
    assert "demo" in registry.available_for_up(LlmSettings(base_url=None, api_key=None))
    settings = LlmSettings(api_key=API_KEY)
    assert API_KEY not in repr(settings)


async def test_an_unreachable_endpoint_is_a_retryable_error(
    repo: TaskRepository, start_llm: StartLlm
) -> None:
    await start_llm(base_url=f"http://127.0.0.1:{_free_port()}/v1")
    task_id = await submit(repo, "hello", max_attempts=1)
    task = await wait_status(repo, task_id, TaskStatus.FAILED)
    assert task.error["code"] == "retry_later"
    assert "cannot reach the model endpoint" in task.error["message"]

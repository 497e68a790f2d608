"""Tracing: the trace context of the request that created a task is stored with it; the
worker's span for running it links to it; LLM, MCP and A2A calls are its children; JSON logs
carry task, instance and trace ids. A real API process, a real MCP server process, an
in-process worker with an in-memory span exporter; only the model is a stand-in."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from processgpt import logs, tracing
from processgpt.agents.delegate import Delegator
from processgpt.agents.llm import LlmExecutor, LlmSettings
from processgpt.config import McpSettings
from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskStatus, TaskSubmission
from processgpt.tools.mcp import McpConnections
from tests.agents import executors as ex
from tests.api.conftest import Api
from tests.conftest import StartWorker
from tests.fake_llm import FakeLLM, Turn
from tests.support import wait_until

MCP_SERVER = Path(__file__).resolve().parent.parent / "mcp_server.py"
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{CALLER_TRACE}-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter)
    yield exporter
    tracing.shutdown()


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[McpConnections]:
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps({"mcpServers": {"calc": {"command": sys.executable, "args": [str(MCP_SERVER)]}}})
    )
    connections = McpConnections(McpSettings(config=config, tool_timeout=10.0))
    yield connections
    await connections.close()


async def _done(db: Database, task_id: str) -> Any:
    async def reached() -> Any:
        task = await TaskRepository(db).get("acme", uuid.UUID(task_id))
        return task if task.status in (TaskStatus.DONE, TaskStatus.FAILED) else None

    return await wait_until(reached, 60)


async def test_a_run_links_to_its_request_and_its_calls_are_child_spans(
    spans: InMemorySpanExporter,
    api: Api,
    db: Database,
    *,
    fake_llm: FakeLLM,
    start_worker: StartWorker,
    executors: list[LlmExecutor],
    pool: McpConnections,
) -> None:
    a2a_url = f"{api.url}/a2a/demo/"
    fake_llm.add(
        Turn(
            tool_calls=[
                ("calc__add", {"a": 1, "b": 2}),
                ("delegate", {"url": a2a_url, "message": "far"}),
            ]
        ),
        Turn(text="3, FAR"),
    )
    settings = LlmSettings(base_url=fake_llm.base_url, api_key="sk-test", model="fake-model")
    delegator = Delegator(remote_prefixes=(api.url,), remote_token=api.key_b, timeout=30)
    executor = LlmExecutor(settings, connections=pool, delegator=delegator)
    executors.append(executor)
    # A long lease: on a loaded machine a 5 s lease can expire mid-run, and a second attempt
    # would make a second task.run span.
    await start_worker({"llm": executor}, lease_seconds=60)
    async with api.client() as client:
        created = await client.post(
            "/v1/tasks",
            json={"agent_orch": "llm", "query": "add and ask"},
            headers={"traceparent": CALLER, "tracestate": "vendor=1"},
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        # The API process does not trace: the caller's context is stored as it came.
        assert created.json()["traceparent"] == CALLER
    row = await db.fetchrow("SELECT traceparent, tracestate FROM todolist WHERE id = $1", task_id)
    assert dict(row) == {"traceparent": CALLER, "tracestate": "vendor=1"}
    task = await _done(db, task_id)
    assert task.status is TaskStatus.DONE, task.error

    finished = spans.get_finished_spans()
    [run] = [s for s in finished if s.name == "task.run"]
    assert run.kind is SpanKind.CONSUMER and run.parent is None  # a trace of its own ...
    [link] = run.links  # ... linked to the request that created the task
    assert format(link.context.trace_id, "032x") == CALLER_TRACE
    assert format(link.context.span_id, "016x") == "b7ad6b7169203331"
    assert run.attributes is not None
    assert run.attributes["processgpt.task_id"] == task_id
    assert run.attributes["processgpt.agent"] == "llm"
    assert run.status.status_code is not StatusCode.ERROR

    children = [
        s for s in finished if s.parent is not None and s.parent.span_id == run.context.span_id
    ]
    assert sorted(s.name for s in children) == [
        "a2a.send_message",
        "llm.chat",
        "llm.chat",
        "mcp.tool_call",
    ]
    assert all(s.context.trace_id == run.context.trace_id for s in children)
    by_name = {s.name: s for s in children}
    assert by_name["mcp.tool_call"].attributes == {"mcp.server": "calc", "mcp.tool": "add"}
    assert by_name["llm.chat"].attributes is not None
    assert by_name["llm.chat"].attributes["gen_ai.request.model"] == "fake-model"
    assert by_name["a2a.send_message"].attributes == {
        "server.address": "127.0.0.1",
        "rpc.system": "a2a",
    }
    # the remote agent got the trace: its task (tenant globex, the delegate's key) stores the
    # context of the a2a.send_message span
    remote = await db.fetchval(
        "SELECT traceparent FROM todolist WHERE tenant_id = 'globex' AND agent_orch = 'demo'"
    )
    a2a_span = by_name["a2a.send_message"].context
    assert remote.split("-")[1:3] == [f"{a2a_span.trace_id:032x}", f"{a2a_span.span_id:016x}"]
    # nothing of the task's input or the model's text on any span
    assert "add and ask" not in repr([s.attributes for s in finished])


async def test_an_invalid_traceparent_is_ignored(api: Api, db: Database) -> None:
    async with api.client() as client:
        for bad in ("nonsense", f"00-{'0' * 32}-b7ad6b7169203331-01", CALLER.upper() + "x"):
            created = await client.post(
                "/v1/tasks", json={"agent_orch": "demo", "query": "x"}, headers={"traceparent": bad}
            )
            assert created.status_code == 201, created.text
            assert created.json()["traceparent"] is None


class _Logging(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        logging.getLogger("tests.tracing").warning("working on it")
        await ex.NoopExecutor().execute(context, event_queue)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.handler("json").formatter)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.mark.parametrize("traced", [False, True])
async def test_json_log_lines_of_a_run_carry_task_instance_and_trace_ids(
    db: Database, start_worker: StartWorker, traced: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What logs.configure(fmt="json") sets, without replacing the test run's log handlers.
    monkeypatch.setattr(logs, "_json_lines", True)
    if traced:
        tracing.configure(exporter=InMemorySpanExporter())
    lines = _Lines()
    logger = logging.getLogger("tests.tracing")
    logger.addHandler(lines)
    try:
        await start_worker({"logging": _Logging()})
        instance = await db.fetchval(
            "INSERT INTO bpm_proc_inst (tenant_id, proc_def_id, status) "
            "VALUES ('default', 'p', 'RUNNING') RETURNING proc_inst_id"
        )
        task, _ = await TaskRepository(db).submit(
            "default",
            TaskSubmission(agent_orch="logging", proc_inst_id=instance, traceparent=CALLER),
            known_agents=frozenset({"logging"}),
        )
        await wait_until(lambda: lines.lines, timeout=15)
    finally:
        logger.removeHandler(lines)
        tracing.shutdown()
    [line] = lines.lines
    assert line["msg"] == "working on it"
    assert line["task_id"] == str(task.id) and line["instance_id"] == str(instance)
    if traced:  # the run's own trace (linked to the caller's)
        assert len(line["trace_id"]) == 32 and line["trace_id"] != CALLER_TRACE
    else:  # the stored context's trace
        assert line["trace_id"] == CALLER_TRACE


def test_trace_context_headers_are_checked() -> None:
    assert tracing.incoming(CALLER, "a=1") == (CALLER, "a=1")
    assert tracing.incoming(f" {CALLER.upper()} ", None) == (CALLER, None)
    assert tracing.incoming("ff" + CALLER[2:], "a=1") == (None, None)  # version ff is invalid
    assert tracing.incoming(f"00-{CALLER_TRACE}-{'0' * 16}-01", None) == (None, None)
    assert tracing.incoming(CALLER, "x" * 600) == (CALLER, None)
    assert tracing.incoming(CALLER, "a=\n1") == (CALLER, None)
    assert tracing.incoming(None, "a=1") == (None, None)
    assert not tracing.enabled()
    with tracing.request_span("r", (CALLER, None)) as stored:  # off: the caller's, as it came
        assert stored == (CALLER, None)
    with tracing.span("s") as span:
        assert span is None
    assert tracing.current_context() == (None, None) and tracing.outbound_headers() == {}

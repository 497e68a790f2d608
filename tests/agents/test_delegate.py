"""The ``delegate`` tool of the ``llm`` agent: a child task for a local agent through the
queue, run by a worker serving that agent (the remote A2A case is in
``tests/api/test_a2a_delegate.py``, next to the API fixture). Only the model is a stand-in."""

from __future__ import annotations

import json
import uuid
from typing import Any

from processgpt.agents.delegate import Delegator, url_under
from processgpt.agents.demo import DemoExecutor
from processgpt.agents.llm import LlmExecutor, LlmSettings
from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskStatus, TaskSubmission
from tests.conftest import StartWorker
from tests.fake_llm import FakeLLM, Turn
from tests.support import assert_gap_free, wait_until

TENANT = "default"


def llm(fake_llm: FakeLLM, delegator: Delegator, made: list[LlmExecutor]) -> LlmExecutor:
    settings = LlmSettings(base_url=fake_llm.base_url, api_key="sk-test", model="fake-model")
    executor = LlmExecutor(settings, delegator=delegator)
    made.append(executor)
    return executor


async def submit(repo: TaskRepository, query: str) -> uuid.UUID:
    task, _ = await repo.submit(
        TENANT, TaskSubmission(agent_orch="llm", query=query), known_agents=frozenset({"llm"})
    )
    return task.id


async def wait_status(repo: TaskRepository, task_id: uuid.UUID, *statuses: TaskStatus) -> Any:
    async def reached() -> Any:
        task = await repo.get(TENANT, task_id)
        return task if task.status in statuses else None

    return await wait_until(reached, 30)


async def tool_events(db: Database, task_id: uuid.UUID) -> list[tuple[str, Any]]:
    rows = await assert_gap_free(db, task_id)
    return [
        (r["event_type"], r["data"])
        for r in rows
        if r["event_type"] in ("tool_usage_started", "tool_usage_finished")
    ]


async def test_delegate_to_a_local_agent_through_the_queue(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_worker: StartWorker,
    executors: list[LlmExecutor],
) -> None:
    fake_llm.add(
        Turn(tool_calls=[("delegate", {"agent": "demo", "message": "hi"})]),
        Turn(text="the demo agent said HI"),
    )
    await start_worker({"llm": llm(fake_llm, Delegator(database=db), executors)})
    await start_worker({"demo": DemoExecutor()})  # another worker serves the child
    task_id = await submit(repo, "ask demo")
    task = await wait_status(repo, task_id, TaskStatus.DONE, TaskStatus.FAILED)
    assert task.status is TaskStatus.DONE, task.error
    assert task.output == "the demo agent said HI"

    assert "delegate" in fake_llm.requests[0].tool_names
    tool_message = fake_llm.requests[1].messages[-1]
    assert tool_message["role"] == "tool"
    child_output = json.loads(tool_message["content"])
    assert child_output["upper"] == "HI"

    (started, start_data), (finished, finish_data) = await tool_events(db, task_id)
    assert (started, finished) == ("tool_usage_started", "tool_usage_finished")
    assert start_data["tool_name"] == "delegate"
    assert start_data["input"] == {"agent": "demo", "message": "hi"}
    assert finish_data["output"] == child_output
    assert finish_data["tool_call_id"] == start_data["tool_call_id"]

    (child,) = [t for t in await repo.list_tasks(TENANT, agent_orch="demo")]
    assert child.status is TaskStatus.DONE
    assert child.input == {"delegated_by": str(task_id)}
    assert child.query == "hi"


async def test_delegate_times_out_and_cancels_the_child(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_worker: StartWorker,
    executors: list[LlmExecutor],
) -> None:
    fake_llm.add(
        Turn(tool_calls=[("delegate", {"agent": "demo", "message": "anyone?"})]),
        Turn(text="nobody answered"),
    )
    # nobody serves demo here
    await start_worker({"llm": llm(fake_llm, Delegator(database=db, timeout=1.0), executors)})
    task_id = await submit(repo, "ask demo")
    task = await wait_status(repo, task_id, TaskStatus.DONE, TaskStatus.FAILED)
    assert task.output == "nobody answered"
    tool_message = fake_llm.requests[1].messages[-1]
    assert tool_message["content"].startswith("Error:") and "within 1s" in tool_message["content"]
    (_, _), (_, finished) = await tool_events(db, task_id)
    assert "within 1s" in finished["error"]
    (child,) = await repo.list_tasks(TENANT, agent_orch="demo")
    assert child.status is TaskStatus.CANCELLED


def test_remote_urls_are_compared_parsed_not_as_text() -> None:
    prefixes = ("https://agents.example", "http://10.0.0.5:8000/a2a/")
    allowed = [
        "https://agents.example/a2a/x/",
        "https://AGENTS.example:443/a2a/x/",
        "http://10.0.0.5:8000/a2a/",
        "http://10.0.0.5:8000/a2a/demo/",
    ]
    refused = [
        "https://agents.example.evil.net/a2a/x/",  # a text prefix would match these
        "https://agents.example@evil.net/a2a/x/",
        "https://agents.example:444/a2a/x/",
        "http://agents.example/a2a/x/",
        "https://user:pw@agents.example/a2a/x/",
        "http://10.0.0.5:8000/a2a-admin/",
        "http://10.0.0.5:8000/",
        "http://10.0.0.5:80/a2a/",
        "not a url",
        "http://[::1/",
    ]
    for url in allowed:
        assert url_under(url, prefixes), url
    for url in refused:
        assert not url_under(url, prefixes), url
    assert not url_under("https://agents.example/x", ())

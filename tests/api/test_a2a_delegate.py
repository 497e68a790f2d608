"""The ``delegate`` tool calling a remote A2A agent: our own ``/a2a/demo/`` in a real API
process, through a2a-sdk's client. Only the model is a stand-in."""

from __future__ import annotations

import json

from processgpt.agents.delegate import Delegator
from processgpt.agents.llm import LlmExecutor
from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskStatus
from tests.agents.test_delegate import llm, submit, tool_events, wait_status
from tests.api.conftest import Api
from tests.conftest import StartWorker
from tests.fake_llm import FakeLLM, Turn


async def test_delegate_to_a_remote_a2a_agent(
    db: Database,
    fake_llm: FakeLLM,
    api: Api,
    start_worker: StartWorker,
    executors: list[LlmExecutor],
) -> None:
    url = f"{api.url}/a2a/demo/"
    fake_llm.add(
        Turn(
            tool_calls=[
                ("delegate", {"url": url, "message": "far away"}),
                ("delegate", {"url": "http://example.invalid/a2a/x/", "message": "no"}),
            ]
        ),
        Turn(text="done"),
    )
    delegator = Delegator(remote_prefixes=(api.url,), remote_token=api.key_a, timeout=30)
    await start_worker({"llm": llm(fake_llm, delegator, executors)})
    repo = TaskRepository(db)
    task_id = await submit(repo, "ask far")
    task = await wait_status(repo, task_id, TaskStatus.DONE, TaskStatus.FAILED)
    assert task.status is TaskStatus.DONE, task.error
    allowed, refused = fake_llm.requests[1].messages[-2:]
    assert json.loads(allowed["content"])["upper"] == "FAR AWAY"
    assert "not allowed" in refused["content"]
    log = await tool_events(db, task_id)
    assert [k for k, _ in log].count("tool_usage_finished") == 2

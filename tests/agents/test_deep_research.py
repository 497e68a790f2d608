"""The ``deep-research`` agent end to end: an in-process worker for it, other workers for its
children (``llm`` answered by the same scripted model, or ``demo``), a real database."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from processgpt.agents import registry
from processgpt.agents.deep_research import DeepResearchExecutor, plan_questions
from processgpt.agents.delegate import Delegator
from processgpt.agents.demo import DemoExecutor
from processgpt.agents.llm import LlmExecutor, LlmSettings, ModelRequestRejected
from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskStatus, TaskSubmission
from tests.conftest import StartWorker
from tests.fake_llm import FakeLLM, Turn
from tests.support import assert_gap_free, wait_until

TENANT = "default"
AGENT = "deep-research"


def settings(fake_llm: FakeLLM) -> LlmSettings:
    return LlmSettings(base_url=fake_llm.base_url, api_key="sk-test", model="fake-model")


async def start_research(
    db: Database,
    fake_llm: FakeLLM,
    start_worker: StartWorker,
    made: list[LlmExecutor],
    *,
    timeout: float = 20.0,
) -> None:
    delegator = Delegator(database=db, timeout=timeout)
    executor = DeepResearchExecutor(settings(fake_llm), delegator=delegator)
    made.append(executor)
    await start_worker({AGENT: executor})


async def submit(repo: TaskRepository, query: str, **input_: Any) -> uuid.UUID:
    task, _ = await repo.submit(
        TENANT,
        TaskSubmission(agent_orch=AGENT, query=query, input=input_),
        known_agents=frozenset({AGENT}),
    )
    return task.id


async def wait_final(repo: TaskRepository, task_id: uuid.UUID) -> Any:
    async def reached() -> Any:
        task = await repo.get(TENANT, task_id)
        return task if task.status in (TaskStatus.DONE, TaskStatus.FAILED) else None

    return await wait_until(reached, 30)


async def events(db: Database, task_id: uuid.UUID) -> list[tuple[str, Any]]:
    rows = await assert_gap_free(db, task_id)
    return [(r["event_type"], r["data"]) for r in rows]


def plan(*questions: str) -> Turn:
    return Turn(text=json.dumps({"questions": list(questions)}), match="research planner")


async def test_plan_parallel_children_on_another_worker_and_a_streamed_report(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_worker: StartWorker,
    executors: list[LlmExecutor],
) -> None:
    questions = ["What is Q-alpha?", "What is Q-beta?", "What is Q-gamma?"]
    report = "# Greek letters\n\nAlpha is first, gamma third; beta could not be researched."
    fake_llm.add(
        plan(*questions),
        Turn(text="alpha comes first", match="Q-alpha"),
        Turn(status=401, error="no beta for you", match="Q-beta"),
        Turn(text="gamma comes third", match="Q-gamma"),
        Turn(text=report, chunk_size=5, match="Research findings"),
    )
    await start_research(db, fake_llm, start_worker, executors)
    child_worker = LlmExecutor(settings(fake_llm))
    executors.append(child_worker)
    llm_worker = await start_worker({"llm": child_worker})

    task_id = await submit(repo, "research the greek letters")
    task = await wait_final(repo, task_id)
    assert task.status is TaskStatus.DONE, task.error

    children = await repo.list_tasks(TENANT, agent_orch="llm")
    assert len(children) == 3
    by_query = {child.query: child for child in children}
    assert set(by_query) == set(questions)
    for child in children:
        assert child.input == {"delegated_by": str(task_id)}
    assert by_query[questions[0]].status is TaskStatus.DONE
    assert by_query[questions[0]].output == "alpha comes first"
    assert by_query[questions[1]].status is TaskStatus.FAILED
    assert by_query[questions[2]].status is TaskStatus.DONE
    assert llm_worker.stats["done"] == 2 and llm_worker.stats["failed"] == 1  # ran there

    assert task.output == {
        "report": report,
        "questions": questions,
        "sources": [str(by_query[questions[0]].id), str(by_query[questions[2]].id)],
    }

    log = await events(db, task_id)
    (plan_event,) = [data for kind, data in log if kind == "research_plan"]
    assert plan_event == {"questions": questions, "worker_agent": "llm"}
    steps = [data for kind, data in log if kind == "research_step"]
    assert len(steps) == 6
    for index, question in enumerate(questions):
        mine = [s for s in steps if s["index"] == index]
        start, end = mine
        assert start["status"] == "started"
        assert start["question"] == end["question"] == question
        assert end["task_id"] == str(by_query[question].id)
        if index == 1:
            assert end["status"] == "failed"
            assert "HTTP 401" in end["error"] and "no beta for you" in end["error"]
        else:
            assert end["status"] == "done"
            assert end["preview"] == by_query[question].output
    kinds = [kind for kind, _ in log]
    assert kinds.index("research_plan") < kinds.index("research_step")
    assert "".join(data["text"] for kind, data in log if kind == "text_delta") == report

    plan_request = fake_llm.requests[0]
    assert plan_request.body["response_format"] == {"type": "json_object"}
    assert "at most 4" in plan_request.messages[0]["content"]
    assert plan_request.messages[-1] == {"role": "user", "content": "research the greek letters"}
    synthesis = fake_llm.requests[-1]
    assert synthesis.body["stream"] is True
    findings = synthesis.messages[-1]["content"]
    assert "research the greek letters" in findings
    assert "alpha comes first" in findings and "gamma comes third" in findings
    assert "research failed" in findings


async def test_the_plan_is_capped_and_children_can_run_on_demo(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_worker: StartWorker,
    executors: list[LlmExecutor],
) -> None:
    fake_llm.add(plan("one", "two", "three"), Turn(text="both done", match="Research findings"))
    await start_research(db, fake_llm, start_worker, executors)
    await start_worker({"demo": DemoExecutor()})
    task_id = await submit(repo, "count", max_questions=2, worker_agent="demo")
    task = await wait_final(repo, task_id)
    assert task.status is TaskStatus.DONE, task.error
    assert task.output["questions"] == ["one", "two"]
    assert task.output["report"] == "both done"
    children = await repo.list_tasks(TENANT, agent_orch="demo")
    assert sorted(c.query for c in children) == ["one", "two"]
    assert all(c.status is TaskStatus.DONE for c in children)
    assert sorted(task.output["sources"]) == sorted(str(c.id) for c in children)
    assert "at most 2" in fake_llm.requests[0].messages[0]["content"]
    assert '"upper": "ONE"' in fake_llm.requests[-1].messages[-1]["content"]


async def test_the_task_fails_when_every_child_fails_and_timed_out_children_are_cancelled(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_worker: StartWorker,
    executors: list[LlmExecutor],
) -> None:
    fake_llm.add(plan("anyone?", "hello?"))
    await start_research(db, fake_llm, start_worker, executors, timeout=1.0)
    # nobody serves demo here
    task_id = await submit(repo, "ask around", worker_agent="demo")
    task = await wait_final(repo, task_id)
    assert task.status is TaskStatus.FAILED
    assert task.error is not None and task.error["code"] == "research_failed"
    assert "within 1s" in task.error["message"]
    children = await repo.list_tasks(TENANT, agent_orch="demo")
    assert len(children) == 2
    assert all(c.status is TaskStatus.CANCELLED for c in children)
    steps = [data for kind, data in await events(db, task_id) if kind == "research_step"]
    assert sorted(s["status"] for s in steps) == ["failed", "failed", "started", "started"]
    assert len(fake_llm.requests) == 1  # no synthesis


async def test_cancelling_the_task_cancels_its_running_children(
    db: Database,
    repo: TaskRepository,
    fake_llm: FakeLLM,
    start_worker: StartWorker,
    executors: list[LlmExecutor],
) -> None:
    fake_llm.add(plan("slow one", "slow two"))
    await start_research(db, fake_llm, start_worker, executors)
    # nobody serves demo here: the children wait until the parent is cancelled
    task_id = await submit(repo, "wait", worker_agent="demo")

    async def children_submitted() -> Any:
        children = await repo.list_tasks(TENANT, agent_orch="demo")
        return children if len(children) == 2 else None

    await wait_until(children_submitted, 30)
    await repo.cancel(TENANT, task_id, "stop")

    async def children_cancelled() -> Any:
        children = await repo.list_tasks(TENANT, agent_orch="demo")
        return all(c.status is TaskStatus.CANCELLED for c in children) or None

    await wait_until(children_cancelled, 30)
    assert (await repo.get(TENANT, task_id)).status is TaskStatus.CANCELLED


def test_plan_questions_are_capped_deduplicated_and_validated() -> None:
    text = '{"questions": ["a", " b ", "a", "", 3, "c", "d"]}'
    assert plan_questions(text, 2) == ["a", "b"]
    assert plan_questions(text, 10) == ["a", "b", "c", "d"]
    assert plan_questions('```json\n{"questions": ["x"]}\n```', 4) == ["x"]
    for bad in ("not json", '{"questions": []}', '{"steps": ["a"]}', '{"questions": "a"}'):
        with pytest.raises(ModelRequestRejected):
            plan_questions(bad, 4)


def test_deep_research_is_offered_only_with_a_model_endpoint() -> None:
    assert AGENT in registry.BUILTINS
    assert AGENT not in registry.available_for_up(LlmSettings(base_url=None, api_key=None))
    assert AGENT in registry.available_for_up(LlmSettings(base_url="http://x/v1"))

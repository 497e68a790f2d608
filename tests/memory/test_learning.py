"""Feedback becomes memory, and memory enters the next task: an in-process worker running the
``llm`` agent against the fake model, with the real memory store, embedder and queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from processgpt.agents.lessons import LlmLessonExtractor
from processgpt.agents.llm import LlmExecutor
from processgpt.config import LlmSettings
from processgpt.db.database import Database
from processgpt.db.memory_feedback import FeedbackQueue
from processgpt.db.tasks import TaskRepository
from processgpt.domain.memory import MemoryCreate, MemoryScope, MemoryStatus
from processgpt.domain.task import TaskStatus, TaskSubmission
from processgpt.memory.service import MemoryService
from processgpt.runtime.learning import LearningLoop, LearningOptions
from processgpt.runtime.memory_context import MemoryContext
from processgpt.runtime.worker import Worker
from tests.conftest import StartWorker
from tests.fake_llm import FakeLLM, Turn
from tests.support import wait_until

TENANT = "default"
ACTIVITY = "weekly-report"
LESSON = "보고서는 항상 표 형식으로 작성한다."
EXTRACT = "existing_memories"  # only lesson-extraction requests contain it


def lessons(*entries: dict[str, Any]) -> Turn:
    return Turn(text=json.dumps({"lessons": list(entries)}, ensure_ascii=False), match=EXTRACT)


Start = Callable[..., Awaitable[tuple[Worker, LearningLoop]]]


@pytest.fixture
async def start(
    db: Database, memory: MemoryService, fake_llm: FakeLLM, start_worker: StartWorker
) -> AsyncIterator[Start]:
    made: list[Any] = []

    async def run(**learning: Any) -> tuple[Worker, LearningLoop]:
        settings = LlmSettings(base_url=fake_llm.base_url, api_key="sk-test", model="fake-model")
        executor = LlmExecutor(settings)
        extractor = LlmLessonExtractor(settings)
        made.extend([executor, extractor])
        loop = LearningLoop(
            FeedbackQueue(db), memory, extractor, LearningOptions(poll_interval=0.1, **learning)
        )
        worker = await start_worker(
            {"llm": executor}, memory=MemoryContext(memory), learning=loop, lease_seconds=30.0
        )
        return worker, loop

    yield run
    for thing in made:
        await thing.aclose()


async def submit(repo: TaskRepository, query: str, **fields: Any) -> uuid.UUID:
    fields.setdefault("activity_id", ACTIVITY)
    task, _ = await repo.submit(
        TENANT,
        TaskSubmission(agent_orch="llm", query=query, **fields),
        known_agents=frozenset({"llm"}),
    )
    return task.id


async def done(repo: TaskRepository, task_id: uuid.UUID) -> Any:
    async def reached() -> Any:
        task = await repo.get(TENANT, task_id)
        return task if task.status in (TaskStatus.DONE, TaskStatus.FAILED) else None

    task = await wait_until(reached, 60)
    assert task.status is TaskStatus.DONE, task.error
    return task


async def all_learned(db: Database) -> None:
    async def settled() -> bool:
        left = await db.fetchval(
            "SELECT count(*) FROM memory_feedback WHERE status IN ('pending', 'processing')"
        )
        return left == 0

    await wait_until(settled, 60)


async def active(memory: MemoryService) -> list[Any]:
    return await memory.repo.list_items(TENANT, status=MemoryStatus.ACTIVE)


@pytest.mark.timeout(300)
async def test_feedback_becomes_one_memory_used_by_the_next_task(
    start: Start, repo: TaskRepository, db: Database, memory: MemoryService, fake_llm: FakeLLM
) -> None:
    await start()
    fake_llm.add(Turn(text="매출: 100, 비용: 50", match="이번 주 매출 보고서"))
    first = await submit(repo, "이번 주 매출 보고서를 써줘")
    await done(repo, first)

    fake_llm.add(lessons({"content": LESSON, "kind": "guideline", "action": "new"}))
    await repo.set_feedback(TENANT, first, "보고서는 항상 표 형식으로")
    await all_learned(db)
    (item,) = await active(memory)
    assert item.content == LESSON and item.source.value == "feedback"
    assert item.source_task_id == first
    (feedback_row,) = await FeedbackQueue(db).of_task(TENANT, first)
    assert item.source_feedback_id == feedback_row["id"]
    assert item.scope == MemoryScope(agent="llm", activity_id=ACTIVITY)
    assert feedback_row["outcome"]["lessons"][0]["action"] == "new"

    # The next task of that activity gets it in its context, its used items and events.
    fake_llm.add(Turn(text="| 항목 | 값 |", match="다음 주 매출 보고서"))
    second = await submit(repo, "다음 주 매출 보고서를 써줘")
    await done(repo, second)
    request = next(
        r
        for r in fake_llm.requests
        if "다음 주 매출 보고서" in json.dumps(r.messages, ensure_ascii=False)
    )
    system = request.messages[0]["content"]
    assert "<memory>" in system and f"[{item.id}]" in system and LESSON in system
    assert {t for t in request.tool_names} >= {"memory_search", "memory_save"}
    uses = await memory.repo.uses_of_task(TENANT, second)
    assert [u["memory_id"] for u in uses] == [item.id]
    events = await repo.events(TENANT, second)
    used = [e for e in events if e.event_type == "memory_used"]
    assert len(used) == 1 and used[0].data["retrieved"][0]["id"] == str(item.id)

    # A task of another activity does not see it.
    fake_llm.add(Turn(text="ok", match="회의록"))
    other = await submit(repo, "회의록을 정리해줘", activity_id="minutes")
    await done(repo, other)
    assert await memory.repo.uses_of_task(TENANT, other) == []

    # The same feedback five more times, then a paraphrase: still one active memory.
    for _ in range(5):
        fake_llm.add(lessons({"content": LESSON, "kind": "guideline", "action": "new"}))
        await repo.set_feedback(TENANT, first, "보고서는 항상 표 형식으로")
    await all_learned(db)
    fake_llm.add(
        lessons({"content": "보고서는 표로 만든다.", "action": "same", "target": str(item.id)})
    )
    await repo.set_feedback(TENANT, second, "보고서는 꼭 표로 만들어 주세요")
    await all_learned(db)
    assert [i.id for i in await active(memory)] == [item.id]
    extraction = [r for r in fake_llm.requests if EXTRACT in json.dumps(r.messages)]
    assert len(extraction) == 7
    # the paraphrase's extraction was shown the existing item to compare with
    assert str(item.id) in extraction[-1].messages[1]["content"]


@pytest.mark.timeout(200)
async def test_praise_is_dropped_and_a_correction_supersedes(
    start: Start, repo: TaskRepository, db: Database, memory: MemoryService, fake_llm: FakeLLM
) -> None:
    old, _ = await memory.teach(
        TENANT,
        MemoryCreate(content="고객 답변은 영어로 쓴다.", scope=MemoryScope(agent="llm")),
        actor="boss",
    )
    await start()
    fake_llm.add(Turn(text="Dear customer", match="고객 문의"))
    task = await submit(repo, "고객 문의에 답해줘")
    await done(repo, task)
    for praise in ("잘했어요!", "great, thanks", "다시 해줘", "👍"):
        await repo.set_feedback(TENANT, task, praise)
    await all_learned(db)
    assert not [r for r in fake_llm.requests if EXTRACT in json.dumps(r.messages)]
    rows = await FeedbackQueue(db).of_task(TENANT, task)
    assert [r["outcome"] for r in rows] == [{"skipped": "praise or nothing to learn"}] * 4

    fake_llm.add(
        lessons(
            {"content": "고객 답변은 한국어로 쓴다.", "action": "replaces", "target": str(old.id)}
        )
    )
    await repo.set_feedback(TENANT, task, "영어 말고 한국어로 답해야 해요")
    await all_learned(db)
    (new,) = await active(memory)
    assert new.content == "고객 답변은 한국어로 쓴다."
    hits = await memory.search(TENANT, MemoryScope(agent="llm"), "고객 답변 언어", threshold=-1)
    assert [h.item.id for h in hits] == [new.id]
    history = await memory.repo.history(TENANT, old.id)
    assert [c.action for c in history] == ["created", "superseded"]
    assert (await memory.repo.get(TENANT, old.id)).superseded_by == new.id


@pytest.mark.timeout(200)
async def test_review_policy_and_conflicts_make_proposals(
    start: Start, repo: TaskRepository, db: Database, memory: MemoryService, fake_llm: FakeLLM
) -> None:
    existing, _ = await memory.teach(
        TENANT,
        MemoryCreate(content="보고서는 PDF로 보낸다.", scope=MemoryScope(agent="llm")),
        actor="boss",
    )
    await memory.repo.set_policy(TENANT, "llm", auto_activate=False)
    await start()
    fake_llm.add(Turn(text="done", match="보고서 보내"))
    task = await submit(repo, "보고서 보내줘")
    await done(repo, task)
    fake_llm.add(
        lessons(
            {
                "content": "보고서는 워드 파일로 보낸다.",
                "action": "conflicts",
                "target": str(existing.id),
            },
            {"content": "보고서 제목에 날짜를 넣는다.", "action": "new"},
            {"content": "무시될 항목", "action": "replaces", "target": str(uuid.uuid4())},
        )
    )
    await repo.set_feedback(TENANT, task, "워드로 보내고 제목에 날짜를 넣어 주세요")
    await all_learned(db)
    assert [i.id for i in await active(memory)] == [existing.id]
    proposals = await memory.repo.list_items(TENANT, status=MemoryStatus.PROPOSED)
    assert sorted(p.content for p in proposals) == sorted(
        ["보고서는 워드 파일로 보낸다.", "보고서 제목에 날짜를 넣는다.", "무시될 항목"]
    )


@pytest.mark.timeout(200)
async def test_a_row_abandoned_mid_way_is_applied_once(
    start: Start, repo: TaskRepository, db: Database, memory: MemoryService, fake_llm: FakeLLM
) -> None:
    """A worker that claimed feedback and died (its lease runs out) leaves it to another;
    the dead one's late finish is refused, so the lesson is applied once."""
    fake_llm.add(Turn(text="ok", match="보고서"))
    queue = FeedbackQueue(db)
    _worker, loop = await start()
    task = await submit(repo, "보고서 써줘")
    await done(repo, task)
    loop.stop()  # the worker's loop ends: our hand-made claim below takes the row first
    await repo.set_feedback(TENANT, task, "보고서는 항상 표 형식으로")
    (dead,) = await queue.claim("dead-worker", 1, 0.5)
    fake_llm.add(lessons({"content": LESSON, "action": "new"}))
    fresh = LearningLoop(queue, memory, loop.extractor, LearningOptions(lease_seconds=5))
    await wait_until(fresh.run_once, 10, interval=0.2)
    assert not await queue.finish(dead, {"late": True})  # the dead worker's write: refused
    (row,) = await queue.of_task(TENANT, task)
    assert row["status"] == "done" and row["attempts"] == 2 and "late" not in row["outcome"]
    assert len(await active(memory)) == 1


@pytest.mark.timeout(200)
async def test_memory_tools_cannot_widen_their_scope(
    start: Start, repo: TaskRepository, db: Database, memory: MemoryService, fake_llm: FakeLLM
) -> None:
    await memory.teach(
        TENANT,
        MemoryCreate(content="llm 규칙: 표를 쓴다", scope=MemoryScope(agent="llm")),
        actor="b",
    )
    await memory.teach(
        TENANT,
        MemoryCreate(content="other 규칙: 비밀", scope=MemoryScope(agent="other")),
        actor="b",
    )
    await memory.teach(
        "acme", MemoryCreate(content="acme 규칙: 비밀", scope=MemoryScope(agent="llm")), actor="b"
    )
    await memory.teach(
        TENANT,
        MemoryCreate(
            content="다른 활동 규칙: 비밀", scope=MemoryScope(agent="llm", activity_id="x")
        ),
        actor="b",
    )
    await start()
    crafted = {
        "query": "규칙 비밀",
        "limit": 10,
        "tenant_id": "acme",
        "agent": "other",
        "scope": {"agent": "other", "activity_id": "x"},
        "activity_id": "x",
    }
    fake_llm.add(
        Turn(tool_calls=[("memory_search", crafted)], match="규칙을 찾아"),
        Turn(
            tool_calls=[
                ("memory_save", {"content": "새 규칙", "status": "active", "tenant_id": "acme"})
            ],
            match="call_",
        ),
        Turn(text="끝", match="Proposed for approval"),
    )
    task = await submit(repo, "규칙을 찾아줘")
    await done(repo, task)
    events = await repo.events(TENANT, task)
    finished = [e for e in events if e.event_type == "tool_usage_finished"]
    found = finished[0].data
    text = json.dumps(found, ensure_ascii=False)
    assert "llm 규칙" in text
    assert "비밀" not in text, text
    (proposal,) = await memory.repo.list_items(TENANT, status=MemoryStatus.PROPOSED)
    assert proposal.content == "새 규칙" and proposal.source.value == "agent"
    assert proposal.scope == MemoryScope(agent="llm", activity_id=ACTIVITY)
    assert await memory.repo.list_items("acme", status=MemoryStatus.PROPOSED) == []
    uses = await memory.repo.uses_of_task(TENANT, task)
    assert {u["how"] for u in uses} >= {"tool"}


async def complete_draft(db: Database, draft: dict[str, Any], output: dict[str, Any]) -> Any:
    """A work item whose agent left ``draft``, completed by a person with ``output``."""
    task_id = await db.fetchval(
        """INSERT INTO todolist (tenant_id, agent_orch, status, activity_id, query, draft)
           VALUES ($1, 'llm', 'TODO', $2, '이번 주 매출 보고서를 써줘', $3) RETURNING id""",
        TENANT,
        ACTIVITY,
        draft,
    )
    await db.execute(
        "UPDATE todolist SET status = 'DONE', finished_at = now(), output = $2 WHERE id = $1",
        task_id,
        output,
    )
    return task_id


@pytest.mark.timeout(120)
async def test_a_substantially_changed_draft_becomes_proposals_only(
    db: Database, hashed_memory: MemoryService, fake_llm: FakeLLM
) -> None:
    existing, _ = await hashed_memory.teach(
        TENANT,
        MemoryCreate(content="보고서는 문장으로 쓴다", scope=MemoryScope(agent="llm")),
        actor="boss",
    )
    drafted = {
        "title": "주간 보고서",
        "body": "이번 주 보고서: 매출은 100이고 비용은 50입니다. 다음 주에는 매출이 조금 더 "
        "늘 것으로 보입니다.",
    }
    table = "| 항목 | 값 |\n|---|---|\n| 매출 | 100 |\n| 비용 | 50 |\n| 전망 | 증가 |"
    changed = await complete_draft(db, drafted, {"title": "주간 보고서", "body": table})
    minor = await complete_draft(
        db,
        {"body": "The quarterly report is attached to this message."},
        {"body": "The quarterly report is attached to this message!"},
    )
    fake_llm.add(
        lessons(
            {
                "content": LESSON,
                "kind": "guideline",
                "action": "replaces",
                "target": str(existing.id),
            },
            {"content": "매출 보고서는 표로 고친다", "kind": "correction", "action": "new"},
        )
    )
    settings = LlmSettings(base_url=fake_llm.base_url, api_key="sk-test", model="fake-model")
    extractor = LlmLessonExtractor(settings)
    loop = LearningLoop(FeedbackQueue(db), hashed_memory, extractor, LearningOptions())
    try:
        assert await loop.run_once() == 2
    finally:
        await extractor.aclose()

    (request,) = fake_llm.requests  # the minor change called no model
    sent = request.messages[1]["content"]
    assert "substantially changed" in sent and "매출은 100이고" in sent
    assert str(existing.id) in sent  # shown the similar active item to compare with
    # Auto-activation is on, yet nothing a person did not say in words becomes active.
    assert [i.id for i in await active(hashed_memory)] == [existing.id]
    proposals = await hashed_memory.repo.list_items(TENANT, status=MemoryStatus.PROPOSED)
    assert sorted(p.content for p in proposals) == sorted([LESSON, "매출 보고서는 표로 고친다"])
    correction = next(p for p in proposals if p.kind.value == "correction")
    assert correction.original is not None and "매출은 100이고" in correction.original
    assert correction.source_task_id == changed
    assert correction.scope == MemoryScope(agent="llm", activity_id=ACTIVITY)
    replacing = next(p for p in proposals if p.content == LESSON)
    assert replacing.scope == existing.scope  # a replacement lives where the item it replaces
    assert (await hashed_memory.repo.get(TENANT, existing.id)).status is MemoryStatus.ACTIVE
    (row,) = await FeedbackQueue(db).of_task(TENANT, changed)
    assert row["signal"] == "draft_changed" and row["status"] == "done"
    assert {d["status"] for d in row["outcome"]["lessons"]} == {"proposed"}
    (row,) = await FeedbackQueue(db).of_task(TENANT, minor)
    assert row["outcome"] == {"skipped": "minor change of the draft"}

"""The learning step: feedback on tasks becomes memory, in the background.

Feedback rows (``memory_feedback``, queued in the same statement that stored the feedback)
are claimed with ``SKIP LOCKED`` and a lease, by any worker that runs this loop; it never
holds up a task. For each row:

1. praise and bare "do it again" are dropped without a model call (:func:`is_praise`);
2. the active items similar to the feedback in the lesson's scope (the task's agent, process
   and activity) are looked up;
3. a :class:`LessonExtractor` (the ``llm`` agent's endpoint, see
   :mod:`processgpt.agents.lessons`) turns the feedback into general lessons and says, for
   each, how it relates to those items: ``same`` (nothing to do), ``new`` (add),
   ``replaces`` (supersede that item; never a hard delete), ``conflicts`` (a proposal for the
   Agent Boss);
4. the decisions and the row's ``done`` commit in one transaction, fenced by the row's
   attempt: a worker killed at any moment leaves either nothing or everything applied, and a
   row taken over after a crash is applied once.

The policy (per agent, else per tenant, else ``PROCESSGPT_MEMORY_AUTO_ACTIVATE``) decides
whether new lessons are active at once or proposals.

Implicit signals: a draft a person changed substantially before completing the work item
(``draft_changed``) goes through the same steps with a description of the change in place of
the reviewer's words (:mod:`processgpt.runtime.draft_change`); its lessons are always
proposals, never active on their own, and a correction keeps the draft as its original.
A minor change is dropped. Failed and re-queued tasks stay recorded for people only: their
errors say more about endpoints and inputs than about how the agent should work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from processgpt.db.memories import NewMemory
from processgpt.db.memory_feedback import FeedbackQueue, FeedbackRow
from processgpt.domain.errors import ProcessGPTError, RetryLater
from processgpt.domain.memory import MemoryKind, MemoryScope, MemorySource, MemoryStatus
from processgpt.memory.service import MemoryService
from processgpt.runtime.draft_change import draft_change

log = logging.getLogger(__name__)

ACTIONS = ("same", "new", "replaces", "conflicts")
MAX_ATTEMPTS = 5
_PRAISE_WORDS = frozenset(
    [
        "good",
        "great",
        "nice",
        "perfect",
        "excellent",
        "awesome",
        "amazing",
        "cool",
        "thanks",
        "thank",
        "you",
        "ok",
        "okay",
        "lgtm",
        "well",
        "done",
        "job",
        "work",
        "very",
        "much",
        "so",
        "really",
        "again",
        "do",
        "it",
        "one",
        "more",
        "time",
        "retry",
        "please",
        "redo",
        "좋아",
        "좋아요",
        "좋네요",
        "좋습니다",
        "좋아요요",
        "잘했어",
        "잘했어요",
        "잘했습니다",
        "잘",
        "했어요",
        "했어요",
        "훌륭해",
        "훌륭해요",
        "훌륭합니다",
        "감사",
        "감사해요",
        "감사합니다",
        "고마워",
        "고마워요",
        "고맙습니다",
        "최고",
        "최고예요",
        "완벽",
        "완벽해",
        "완벽해요",
        "완벽합니다",
        "수고",
        "수고했어요",
        "수고하셨습니다",
        "다시",
        "해줘",
        "해",
        "줘",
        "해주세요",
        "한",
        "번",
        "더",
        "부탁해요",
        "부탁합니다",
        "네",
        "예",
    ]
)


def is_praise(text: str) -> bool:
    """Praise, thanks or a bare "do it again" (every word is one of those): nothing to learn."""
    words = re.sub(r"[^\w\s]", " ", text.casefold()).split()
    return all(word in _PRAISE_WORDS for word in words)


def feedback_text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        for key in ("text", "feedback", "comment", "content", "message"):
            if isinstance(value.get(key), str):
                return str(value[key]).strip()
    return "" if value is None else str(value).strip()


@dataclass(frozen=True)
class Lesson:
    """A general lesson and how it relates to the similar items shown to the extractor."""

    content: str
    kind: MemoryKind = MemoryKind.GUIDELINE
    action: str = "new"
    target: uuid.UUID | None = None


class LessonExtractor(Protocol):
    """Turns one piece of feedback into lessons (a model call)."""

    async def extract(
        self,
        feedback: str,
        *,
        task_query: str,
        answer: str,
        similar: Sequence[dict[str, str]],
    ) -> list[Lesson]: ...


@dataclass
class LearningOptions:
    consumer: str = "learning"
    batch: int = 5
    lease_seconds: float = 120.0
    poll_interval: float = 2.0
    similar_limit: int = 5
    similar_threshold: float = 0.75
    auto_activate: bool = True


@dataclass
class Applied:
    outcome: dict[str, Any] = field(default_factory=dict)


class LearningLoop:
    """Claims feedback rows and applies their lessons (see the module)."""

    def __init__(
        self,
        queue: FeedbackQueue,
        memory: MemoryService,
        extractor: LessonExtractor,
        options: LearningOptions | None = None,
    ) -> None:
        self.queue = queue
        self.memory = memory
        self.extractor = extractor
        self.options = options or LearningOptions()
        self._wake = asyncio.Event()
        self._stopping = False
        self.processed = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Process rows until :meth:`stop` (or cancellation)."""
        while not self._stopping:
            worked = await self.run_once()
            if worked:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.options.poll_interval)

    async def run_once(self) -> int:
        """Claim one batch and process it; returns how many rows were claimed."""
        opts = self.options
        try:
            rows = await self.queue.claim(opts.consumer, opts.batch, opts.lease_seconds)
        except ProcessGPTError as exc:  # the database is away: try again at the next tick
            log.warning("learning claim failed error=%s", exc.code)
            return 0
        for row in rows:
            await self._process(row)
        return len(rows)

    async def _process(self, row: FeedbackRow) -> None:
        try:
            await self.apply(row)
            self.processed += 1
        except RetryLater as exc:
            await self._retry(row, exc.message)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then recorded
            log.warning(
                "learning step failed feedback=%s attempt=%d error=%s",
                row.id,
                row.attempts,
                type(exc).__name__,
            )
            await self._retry(row, f"{type(exc).__name__}: {str(exc)[:300]}")

    async def _retry(self, row: FeedbackRow, why: str) -> None:
        outcome = {"error": why}
        if row.attempts >= MAX_ATTEMPTS:
            await self.queue.finish(row, outcome, failed=True)
            return
        await self.queue.retry(row, min(2.0**row.attempts, 300.0), outcome)

    async def apply(self, row: FeedbackRow) -> None:
        """Learn from one row and mark it done, in one transaction."""
        if row.signal == "draft_changed":  # comparing large drafts is CPU work: off the loop
            source = await asyncio.to_thread(what_to_learn, row)
        else:
            source = what_to_learn(row)
        if isinstance(source, dict):
            await self.queue.finish(row, source)
            return
        text, original, proposals_only = source
        scope = MemoryScope(
            agent=row.agent, proc_def_id=row.proc_def_id, activity_id=row.activity_id
        )
        similar = await self.memory.search(
            row.tenant_id,
            scope,
            text,
            limit=self.options.similar_limit,
            threshold=self.options.similar_threshold,
        )
        shown = {str(h.item.id): h.item for h in similar}
        lessons = await self.extractor.extract(
            text,
            task_query=row.query or "",
            answer=feedback_text(row.answer)[:4000],
            similar=[{"id": i, "content": item.content} for i, item in shown.items()],
        )
        auto = await self.memory.repo.auto_activate(row.tenant_id, row.agent)
        if auto is None:
            auto = self.options.auto_activate
        if proposals_only:
            auto = False
        prepared = []
        for lesson in lessons:
            vector, model = await self.memory.passage(lesson.content)
            prepared.append((lesson, vector, model))
        actor = f"feedback:{row.id}"
        decisions: list[dict[str, Any]] = []
        async with self.memory.repo.db.transaction() as conn:
            for lesson, vector, model in prepared:
                target = shown.get(str(lesson.target)) if lesson.target else None
                action = lesson.action if lesson.action in ACTIONS else "new"
                if action in ("same", "replaces", "conflicts") and target is None:
                    action = "new"  # an id the extractor was not shown is never touched
                if action == "same":
                    decisions.append(
                        {"action": "same", "memory_id": str(target.id) if target else None}
                    )
                    continue
                active = auto and action in ("new", "replaces")
                new = NewMemory(
                    scope=target.scope if target is not None and action == "replaces" else scope,
                    kind=lesson.kind,
                    content=lesson.content,
                    status=MemoryStatus.ACTIVE if active else MemoryStatus.PROPOSED,
                    source=MemorySource.FEEDBACK,
                    embedding=vector,
                    embedding_model=model,
                    source_task_id=row.task_id,
                    source_feedback_id=row.id,
                    created_by=actor,
                    original=original if lesson.kind is MemoryKind.CORRECTION else None,
                )
                reason = {
                    "new": "learned from a changed draft"
                    if proposals_only
                    else "learned from feedback",
                    "replaces": f"replaces {target.id}" if target else None,
                    "conflicts": f"conflicts with {target.id}" if target else None,
                }.get(action)
                item, created = await self.memory.add(
                    row.tenant_id, new, actor=actor, reason=reason, conn=conn
                )
                decision = {
                    "action": action,
                    "memory_id": str(item.id),
                    "created": created,
                    "status": item.status.value,
                }
                if action == "replaces" and active and created and target is not None:
                    await self.memory.repo.set_status(
                        row.tenant_id,
                        target.id,
                        MemoryStatus.SUPERSEDED,
                        allowed_from=[MemoryStatus.ACTIVE],
                        actor=actor,
                        action="superseded",
                        reason="replaced by a lesson from feedback",
                        superseded_by=item.id,
                        conn=conn,
                    )
                    decision["superseded"] = str(target.id)
                decisions.append(decision)
            if not await self.queue.finish(row, {"lessons": decisions}, conn=conn):
                raise _LostRow(row.id)  # rolls back: the row's new owner applies it
        log.info(
            "feedback learned feedback=%s tenant=%s lessons=%d",
            row.id,
            row.tenant_id,
            len(decisions),
        )


def what_to_learn(row: FeedbackRow) -> tuple[str, str, bool] | dict[str, Any]:
    """What the extractor reads for ``row``, the original a correction keeps, and whether
    its lessons may only be proposals; or the outcome of a row with nothing to learn."""
    if row.signal == "draft_changed":
        change = draft_change(row.diff)
        if change is None:
            return {"skipped": "minor change of the draft"}
        return change.description, change.draft, True
    if row.signal != "feedback":
        return {"recorded": True}
    text = feedback_text(row.feedback)
    if is_praise(text):
        return {"skipped": "praise or nothing to learn"}
    return text, feedback_text(row.answer)[:20000] or "(no answer)", False


class _LostRow(ProcessGPTError):
    code = "lease_lost"

    def __init__(self, feedback_id: uuid.UUID) -> None:
        super().__init__(f"feedback {feedback_id} was taken over by another worker")

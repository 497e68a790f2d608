"""The lesson extractor of the learning step (:mod:`processgpt.runtime.learning`): one
non-streamed call to the ``llm`` agent's OpenAI-compatible endpoint, answered as JSON.

The model sees the feedback, the task's instruction and answer, and the similar active items
(id and content), and answers ``{"lessons": [{"content", "kind", "action", "target"}]}``.
Whatever it answers is checked: unknown kinds become guidelines, unknown actions ``new``, and
the learning step ignores targets it did not show.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from processgpt.config import LlmSettings
from processgpt.domain.errors import RetryLater
from processgpt.domain.memory import MAX_CONTENT, MemoryKind
from processgpt.runtime.learning import ACTIONS, Lesson

if TYPE_CHECKING:
    from openai import AsyncOpenAI

MAX_LESSONS = 5

SYSTEM = """You turn a reviewer's feedback on an AI agent's work into general lessons the \
agent should remember for its next tasks.
- Drop praise, thanks and bare requests to do it again: answer {"lessons": []}.
- A lesson is one short imperative rule, general enough for similar tasks ("when X, do Y"), \
in the language of the feedback. Do not copy task-specific details.
- kind: "guideline" (how to work), "preference" (what a person prefers), "fact" (something \
true), or "correction" (a specific wrong answer and the right one).
- Compare each lesson with the existing memories listed (id and content):
  "same" if one already says it (give its id as target), "replaces" if it updates or corrects \
one (target: that id), "conflicts" if it contradicts one and a person should decide \
(target: that id), else "new".
Answer only JSON: {"lessons": [{"content": "...", "kind": "...", "action": "...", \
"target": "<id or null>"}]}"""


class LlmLessonExtractor:
    """Extracts lessons with the model of ``settings`` (``model`` overrides its name)."""

    def __init__(self, settings: LlmSettings, *, model: str | None = None) -> None:
        settings.require_endpoint("learning")
        self.settings = settings
        self.model = model or settings.model
        self._client: AsyncOpenAI | None = None

    def _openai(self) -> AsyncOpenAI:
        if self._client is None:
            from openai import AsyncOpenAI  # noqa: PLC0415 - loaded by the first lesson

            self._client = AsyncOpenAI(
                base_url=self.settings.base_url,
                api_key=self.settings.api_key or "not-needed",
                timeout=self.settings.timeout,
                max_retries=0,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def extract(
        self,
        feedback: str,
        *,
        task_query: str,
        answer: str,
        similar: Sequence[dict[str, str]],
    ) -> list[Lesson]:
        import openai  # noqa: PLC0415

        user = json.dumps(
            {
                "feedback": feedback[:4000],
                "task": task_query[:2000],
                "answer": answer[:4000],
                "existing_memories": list(similar),
            },
            ensure_ascii=False,
        )
        try:
            response = await self._openai().chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
                response_format={"type": "json_object"},
                temperature=0,
            )
        except openai.APIStatusError as exc:
            raise RetryLater(f"the model endpoint answered HTTP {exc.status_code}") from None
        except openai.APIError as exc:
            raise RetryLater(f"the model endpoint failed: {type(exc).__name__}") from None
        text = response.choices[0].message.content or ""
        return parse_lessons(text)


def parse_lessons(text: str) -> list[Lesson]:
    """Lessons from the model's JSON answer (anything unusable is dropped)."""
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        data: Any = json.loads(text)
    except ValueError:
        raise RetryLater("the model's lessons are not JSON") from None
    raw = data.get("lessons") if isinstance(data, dict) else data
    lessons: list[Lesson] = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict):
            continue
        content = str(entry.get("content") or "").strip()
        if not content or len(content) > MAX_CONTENT:
            continue
        try:
            kind = MemoryKind(str(entry.get("kind") or "guideline"))
        except ValueError:
            kind = MemoryKind.GUIDELINE
        action = str(entry.get("action") or "new")
        try:
            target = uuid.UUID(str(entry["target"])) if entry.get("target") else None
        except ValueError:
            target = None
        lessons.append(Lesson(content, kind, action if action in ACTIONS else "new", target))
    return lessons[:MAX_LESSONS]

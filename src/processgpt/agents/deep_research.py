"""The built-in ``deep-research`` orchestrator: plan sub-questions, have other agents research
them in parallel as child tasks, then write one report from their answers.

A run has three parts, all visible in the task's event log:

1. **Plan** — one completion (JSON) returns up to ``input.max_questions`` (default 4, at most
   10) sub-questions; a ``research_plan`` event lists them.
2. **Research** — each sub-question becomes a child task of ``input.worker_agent`` (default
   ``llm``) through the queue (:meth:`Delegator.local`: the caller's tenant,
   ``input.delegated_by``, an idempotency key per question so a retried run reuses finished
   children), so whichever workers serve that agent share the work. At most
   ``input.concurrency`` (default 4) run at once. Each child's start and end is a
   ``research_step`` event (``index``, ``question``, ``status`` started|done|failed,
   ``task_id``, a short ``preview`` or the ``error``). A failed or timed-out child is told to
   the synthesis as failed; the task fails (:class:`ResearchFailed`) only when all fail.
3. **Synthesis** — one streamed completion (``text_delta`` events) writes the report. The
   result is ``{"report", "questions", "sources"}`` (``sources``: the ids of the children
   that answered); a task with a form asks for a JSON object with the form's fields instead,
   and that object is the result.

It is the ``llm`` agent's sibling: the same settings (:class:`~processgpt.config.LlmSettings`,
passed in by the composition root; no model endpoint, no executor), the same
``input.model`` / ``input.instructions`` / profile overrides and the same mapping of provider
errors (retryable → ``RetryLater``, other 4xx → ``ModelRequestRejected``). Cancelling the
task cancels its running children.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from a2a.server.agent_execution import RequestContext
from a2a.server.events import EventQueue

from processgpt import tracing
from processgpt.agents.a2a_adapter import ProcessGPTEventQueue, ProcessGPTRequestContext
from processgpt.agents.llm import (
    DEFAULT_INSTRUCTIONS,
    LlmExecutor,
    ModelRequestRejected,
    finish,
)
from processgpt.agents.llm_conversation import form_answer, form_instructions
from processgpt.agents.llm_plan import TaskPlan
from processgpt.domain.errors import InvalidInput

if TYPE_CHECKING:
    from openai import AsyncOpenAI

DEFAULT_MAX_QUESTIONS = 4
MAX_QUESTIONS_LIMIT = 10
DEFAULT_WORKER_AGENT = "llm"
DEFAULT_CONCURRENCY = 4
PREVIEW_CHARS = 200

PLAN_INSTRUCTIONS = (
    "You are a research planner. Split the research request into at most {n} focused "
    "sub-questions that can be researched independently and together answer it. Reply with "
    'only a JSON object (no prose, no code fences): {{"questions": ["...", "..."]}}'
)
SYNTHESIS_INSTRUCTIONS = (
    "You are a research writer. Write a clear, well-structured report that answers the "
    "research request from the research findings for its sub-questions. Where a "
    "sub-question's research failed, say what is missing instead of inventing it."
)


class ResearchFailed(InvalidInput):
    """Every sub-question's child task failed: there is nothing to write a report from."""

    code = "research_failed"


@dataclass(frozen=True)
class Finding:
    """What one sub-question's child task produced."""

    index: int
    question: str
    text: str
    task_id: str | None
    error: str | None = None


def plan_questions(text: str, max_questions: int) -> list[str]:
    """The sub-questions in the planner's JSON answer (``{"questions": [...]}``), stripped,
    without duplicates, at most ``max_questions``."""
    answer = form_answer(text)
    raw = answer.get("questions") if answer is not None else None
    if not isinstance(raw, list):
        raise ModelRequestRejected("the model's plan is not a JSON object with 'questions'")
    questions: list[str] = []
    for item in raw:
        question = item.strip() if isinstance(item, str) else ""
        if question and question not in questions:
            questions.append(question)
    if not questions:
        raise ModelRequestRejected("the model's plan has no sub-questions")
    return questions[:max_questions]


def _bounded_int(options: Mapping[str, Any], name: str, default: int, limit: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not (1 <= value <= limit):
        raise InvalidInput(
            f"input.{name} must be an integer from 1 to {limit}", field=f"input.{name}"
        )
    return value


class DeepResearchExecutor(LlmExecutor):
    """Plans sub-questions, researches them in parallel as child tasks, writes a report."""

    agent_name = "deep-research"

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        if not isinstance(context, ProcessGPTRequestContext) or not isinstance(
            event_queue, ProcessGPTEventQueue
        ):
            raise InvalidInput("the deep-research agent runs on a processgpt worker")
        data = context.get_context_data()
        row: dict[str, Any] = data["row"]
        extras: dict[str, Any] = data["extras"]
        options: dict[str, Any] = row.get("input") or {}
        plan = TaskPlan.of(self.settings, options, extras)
        max_questions = _bounded_int(
            options, "max_questions", DEFAULT_MAX_QUESTIONS, MAX_QUESTIONS_LIMIT
        )
        concurrency = _bounded_int(options, "concurrency", DEFAULT_CONCURRENCY, MAX_QUESTIONS_LIMIT)
        worker_agent = options.get("worker_agent", DEFAULT_WORKER_AGENT)
        if not isinstance(worker_agent, str) or not worker_agent:
            raise InvalidInput(
                "input.worker_agent must be an agent's name", field="input.worker_agent"
            )
        if not self.delegator.available:
            raise InvalidInput("the deep-research agent needs DATABASE_URL on this worker")
        query = context.get_user_input()
        client = self._openai()

        questions = await self._plan(
            client, queue=event_queue, plan=plan, row=row, query=query, max_questions=max_questions
        )
        await event_queue.progress(
            {"questions": questions, "worker_agent": worker_agent}, name="research_plan"
        )
        limit = asyncio.Semaphore(concurrency)
        # A TaskGroup, not a bare gather: if one child's bookkeeping fails (say, the database
        # is gone), the others are cancelled too, and with them their child tasks.
        try:
            async with asyncio.TaskGroup() as group:
                running = [
                    group.create_task(
                        self._research(
                            event_queue,
                            limit=limit,
                            row=row,
                            agent=worker_agent,
                            index=index,
                            question=question,
                        )
                    )
                    for index, question in enumerate(questions)
                ]
        except ExceptionGroup as errors:
            raise errors.exceptions[0] from None
        findings = [task.result() for task in running]
        if all(f.error is not None for f in findings):
            raise ResearchFailed(
                f"all {len(findings)} sub-questions failed; the first: {findings[0].error}"
            )

        await event_queue.step_started()
        messages = _synthesis_messages(plan, query, findings)
        step = await self._complete(client, event_queue, plan, messages, None)
        await event_queue.step_finished(step.usage)
        result: Any
        if plan.form_fields:
            result = form_answer(step.text)
            if result is None:
                raise ModelRequestRejected(
                    "the model's report is not a JSON object with the form's fields"
                )
        else:
            result = {
                "report": step.text,
                "questions": questions,
                "sources": [f.task_id for f in findings if f.task_id and f.error is None],
            }
        await finish(context, event_queue, result)

    async def _plan(
        self,
        client: AsyncOpenAI,
        *,
        queue: ProcessGPTEventQueue,
        plan: TaskPlan,
        row: Mapping[str, Any],
        query: str,
        max_questions: int,
    ) -> list[str]:
        """One JSON completion: the sub-questions, capped at ``max_questions``."""
        import openai  # noqa: PLC0415 - optional dependency

        system = PLAN_INSTRUCTIONS.format(n=max_questions)
        description = row.get("description")
        if isinstance(description, str) and description.strip() and description.strip() != query:
            system += f"\n\nTask description:\n{description.strip()}"
        await queue.step_started()
        try:
            with tracing.span(
                "llm.chat",
                {"gen_ai.operation.name": "chat", "gen_ai.request.model": plan.model},
                client=True,
            ):
                completion = await client.chat.completions.create(
                    model=plan.model,
                    messages=[
                        {"role": "system", "content": system},
                        {"role": "user", "content": query},
                    ],
                    response_format={"type": "json_object"},
                )
        except openai.APIError as exc:
            raise self._provider_error(exc) from None
        usage: dict[str, Any] = {}
        if completion.usage is not None:
            usage = {
                "prompt_tokens": completion.usage.prompt_tokens,
                "completion_tokens": completion.usage.completion_tokens,
                "total_tokens": completion.usage.total_tokens,
                "model": completion.model or plan.model,
            }
        await queue.step_finished(usage)
        text = completion.choices[0].message.content if completion.choices else None
        return plan_questions(text or "", max_questions)

    async def _research(
        self,
        queue: ProcessGPTEventQueue,
        *,
        limit: asyncio.Semaphore,
        row: Mapping[str, Any],
        agent: str,
        index: int,
        question: str,
    ) -> Finding:
        """One sub-question as a child task of ``agent``, reported as ``research_step``."""
        digest = hashlib.sha256(question.encode()).hexdigest()[:12]
        async with limit:
            await queue.progress(
                {"index": index, "question": question, "status": "started"},
                name="research_step",
            )
            outcome, child = await self.delegator.local(
                row, f"research:{index}:{digest}", agent, question
            )
        task_id = str(child) if child else None
        step: dict[str, Any] = {"index": index, "question": question, "task_id": task_id}
        if outcome.error is not None:
            step |= {"status": "failed", "error": outcome.error}
        else:
            step |= {"status": "done", "preview": outcome.text[:PREVIEW_CHARS]}
        await queue.progress(step, name="research_step")
        return Finding(index, question, outcome.text, task_id, outcome.error)


def _synthesis_messages(
    plan: TaskPlan, query: str, findings: Sequence[Finding]
) -> list[dict[str, Any]]:
    system = [SYNTHESIS_INSTRUCTIONS]
    if plan.instructions.strip() and plan.instructions != DEFAULT_INSTRUCTIONS:
        # the task's, the profile's or the deployment's instructions (the llm agent's default
        # one is about tools, which the synthesis has none of)
        system.append(plan.instructions.strip())
    if plan.form_fields:
        system.append(form_instructions(plan.form_fields))
    parts = [f"Research request:\n{query}", "Research findings:"]
    for finding in findings:
        body = (
            f"(this sub-question's research failed: {finding.error})"
            if finding.error is not None
            else finding.text
        )
        parts.append(f"### {finding.index + 1}. {finding.question}\n{body}")
    return [
        {"role": "system", "content": "\n\n".join(system)},
        {"role": "user", "content": "\n\n".join(parts)},
    ]

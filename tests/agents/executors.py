"""Executors used by the tests (importable by worker processes as
``tests.agents.executors:Name``)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar

from a2a.helpers import new_text_artifact, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.types import (
    Message,
    Part,
    Role,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

from processgpt.domain.errors import LeaseLost
from processgpt_agent_sdk.compat import TaskArtifactUpdateEvent as TaskArtifactUpdateEvent03
from processgpt_agent_sdk.compat import TaskState as TaskState03
from processgpt_agent_sdk.compat import TaskStatusUpdateEvent as TaskStatusUpdateEvent03
from processgpt_agent_sdk.compat import new_agent_text_message
from processgpt_agent_sdk.compat import new_text_artifact as new_text_artifact03


def _status(context: RequestContext, state: int, text: str) -> TaskStatusUpdateEvent:
    return TaskStatusUpdateEvent(
        task_id=str(context.task_id),
        context_id=str(context.context_id),
        status=TaskStatus(state=state, message=new_text_message(text)),  # type: ignore[arg-type]
    )


def _artifact(context: RequestContext, text: str) -> TaskArtifactUpdateEvent:
    return TaskArtifactUpdateEvent(
        task_id=str(context.task_id),
        context_id=str(context.context_id),
        artifact=new_text_artifact(name="result", text=text),
        last_chunk=True,
    )


class MinimalExecutor(AgentExecutor):
    """The seed's MinimalExecutor: 0.3-style types, enqueue_event not awaited."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        query = context.get_user_input()
        payload = {"demo": "hello world", "query": query}
        row = context.get_context_data()["row"]  # type: ignore[attr-defined]
        event_queue.enqueue_event(
            TaskStatusUpdateEvent03(
                status={
                    "state": TaskState03.working,
                    "message": new_agent_text_message(
                        json.dumps(payload, ensure_ascii=False), row["proc_inst_id"], row["id"]
                    ),
                },
                contextId=row["proc_inst_id"] or row["id"],
                taskId=row["id"],
                metadata={"crew_type": "action", "event_type": "task_started"},
            )
        )
        artifact = new_text_artifact03(
            name="result", description="Demo Result", text=json.dumps(payload, ensure_ascii=False)
        )
        event_queue.enqueue_event(
            TaskArtifactUpdateEvent03(
                artifact=artifact,
                lastChunk=True,
                contextId=row["proc_inst_id"] or row["id"],
                taskId=row["id"],
            )
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class NoopExecutor(AgentExecutor):
    """Two status events and a final artifact."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        await event_queue.enqueue_event(_status(context, TaskState.TASK_STATE_WORKING, "start"))
        await event_queue.enqueue_event(_status(context, TaskState.TASK_STATE_WORKING, "half"))
        await event_queue.enqueue_event(_artifact(context, json.dumps({"ok": True})))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class SlowExecutor(AgentExecutor):
    """Emits ``input.steps`` events, ``input.delay`` seconds apart, then its result.
    Records in ``cancelled`` (task id → monotonic time) when it is stopped: cancelled, or told
    by ``enqueue_event`` that its writes are no longer accepted, whichever reaches it first."""

    cancelled: ClassVar[dict[str, float]] = {}
    started: ClassVar[dict[str, float]] = {}

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        options: dict[str, Any] = context.get_context_data()["row"]["input"]  # type: ignore[attr-defined]
        SlowExecutor.started[str(context.task_id)] = time.monotonic()
        try:
            for step in range(int(options.get("steps", 10))):
                await event_queue.enqueue_event(
                    _status(context, TaskState.TASK_STATE_WORKING, json.dumps({"step": step}))
                )
                await asyncio.sleep(float(options.get("delay", 0.1)))
        except (asyncio.CancelledError, LeaseLost):
            SlowExecutor.cancelled[str(context.task_id)] = time.monotonic()
            raise
        await event_queue.enqueue_event(
            _artifact(context, json.dumps({"steps": options.get("steps", 10)}))
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class CountingExecutor(AgentExecutor):
    """Sleeps 20 ms and completes; counts how many of its runs were under way at once."""

    def __init__(self) -> None:
        self.running = self.most_running = self.finished = 0

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.02)
        finally:
            self.running -= 1
        self.finished += 1
        await event_queue.enqueue_event(_artifact(context, "{}"))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class FlakyExecutor(AgentExecutor):
    """Fails while ``attempt <= input.fail_attempts``; records each attempt's start time."""

    attempts: ClassVar[dict[str, list[float]]] = {}

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        row = context.get_context_data()["row"]  # type: ignore[attr-defined]
        FlakyExecutor.attempts.setdefault(row["id"], []).append(time.monotonic())
        if row["attempts"] <= int(row["input"].get("fail_attempts", 0)):
            raise RuntimeError(f"flaky failure on attempt {row['attempts']}")
        await event_queue.enqueue_event(_artifact(context, "ok"))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class AskingExecutor(AgentExecutor):
    """Asks a person once; completes with the answer it got."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        extras = context.get_context_data()["extras"]  # type: ignore[attr-defined]
        if extras["human_response"] is None:
            await event_queue.enqueue_event(
                _status(
                    context,
                    TaskState.TASK_STATE_INPUT_REQUIRED,
                    json.dumps({"role": "agent", "text": "Which colour?", "type": "text"}),
                )
            )
            return
        await event_queue.enqueue_event(
            _artifact(context, json.dumps({"colour": extras["human_response"]}))
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class SilentExecutor(AgentExecutor):
    """Returns without any result."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        await event_queue.enqueue_event(_status(context, TaskState.TASK_STATE_WORKING, "hmm"))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class MessageExecutor(AgentExecutor):
    """Answers with a single A2A Message (an immediate response)."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        await event_queue.enqueue_event(
            Message(message_id="m", role=Role.ROLE_AGENT, parts=[Part(text="plain answer")])
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class BlockingExecutor(AgentExecutor):
    """Blocks its thread with time.sleep (sync code inside an async execute)."""

    blocking = True

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        seconds = float(context.get_context_data()["row"]["input"].get("sleep", 1.0))  # type: ignore[attr-defined]
        time.sleep(seconds)
        await event_queue.enqueue_event(_artifact(context, json.dumps({"slept": seconds})))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class StreamingExecutor(AgentExecutor):
    """A model-like run through the queue helpers: a step with streamed text, a tool call
    and its result, a progress update, more text; ``input.pause`` seconds of silence in the
    middle; ``input.ask`` asks a person first."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        data = context.get_context_data()  # type: ignore[attr-defined]
        options: dict[str, Any] = data["row"]["input"]
        q: Any = event_queue
        if options.get("ask") and data["extras"]["human_response"] is None:
            await event_queue.enqueue_event(
                _status(
                    context,
                    TaskState.TASK_STATE_INPUT_REQUIRED,
                    json.dumps({"text": options["ask"], "type": "text"}),
                )
            )
            return
        await q.step_started()
        for word in ("Let ", "me ", "look ", "that ", "up."):
            await q.text(word)
            await asyncio.sleep(0.005)
        call = q.tool_call("search", {"q": context.get_user_input()})
        await asyncio.sleep(float(options.get("pause", 0)))
        await q.tool_result(call, "search", {"hits": 3})
        await q.progress({"status": "summarising", "pct": 50})
        await q.text("Found ")
        await q.text("3 results.")
        await q.step_finished({"tokens": 42})
        answer = data["extras"]["human_response"]
        await event_queue.enqueue_event(
            _artifact(context, json.dumps({"answer": "3 results", "human": answer}))
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class ChatEchoExecutor(AgentExecutor):
    """A chat agent that shows what it was given: streams ``echo: <query>`` word by word
    (0.2 s apart when the query contains ``slow``), calls a ``history`` tool whose result is
    the chat history it saw, sends the first attachment back as a file, and reports usage.
    A query starting with ``ask:`` asks the user first (the answer is in the result); one
    starting with ``fail:`` fails the task with the rest as the reason."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        data = context.get_context_data()  # type: ignore[attr-defined]
        options: dict[str, Any] = data["row"]["input"]
        answer = data["extras"]["human_response"]
        query = context.get_user_input()
        q: Any = event_queue
        if query.startswith("ask:") and answer is None:
            await event_queue.enqueue_event(
                _status(
                    context,
                    TaskState.TASK_STATE_INPUT_REQUIRED,
                    json.dumps({"text": query.removeprefix("ask:").strip(), "type": "text"}),
                )
            )
            return
        if query.startswith("fail:"):
            await q.text("trying ")
            await event_queue.enqueue_event(
                _status(context, TaskState.TASK_STATE_FAILED, query.removeprefix("fail:").strip())
            )
            return
        history = options.get("history", [])
        await q.step_started()
        delay = 0.2 if "slow" in query else 0.0
        for word in f"echo: {query}".split(" "):
            await q.text(word + " ")
            await asyncio.sleep(delay)
        call = q.tool_call("history", {"turns": len(history)})
        await q.tool_result(call, "history", history)
        if options.get("attachments"):
            await q.file(
                f"file:///workspace/{options['attachments'][0]}",
                "text/plain",
                path=options["attachments"][0],
            )
        await q.step_finished({"input_tokens": 5, "output_tokens": 2})
        result = {"query": query, "answer": answer, "chat_id": options.get("chat_id")}
        await event_queue.enqueue_event(_artifact(context, json.dumps(result)))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None

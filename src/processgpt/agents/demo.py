"""The built-in ``demo`` agent: deterministic, no LLM, useful on a first run with no keys."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from a2a.helpers import new_text_artifact, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.types import TaskArtifactUpdateEvent, TaskState, TaskStatus, TaskStatusUpdateEvent
from google.protobuf.struct_pb2 import Struct

from processgpt.domain.errors import RetryLater


async def _read_files(context: RequestContext) -> list[dict[str, Any]]:
    files = context.files  # type: ignore[attr-defined]
    listed = []
    for info in await files.list():
        data = await files.read(info.id)
        listed.append(
            {"name": info.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    return listed


def _metadata(**values: str) -> Struct:
    meta = Struct()
    meta.update(values)
    return meta


class DemoExecutor(AgentExecutor):
    """Streams a few progress events and returns a JSON summary of the query.

    Input options (all optional): ``steps`` (progress events, default 3), ``delay`` (seconds
    per step, default 0.05), ``fail_attempts`` (fail the first N attempts, to see retries),
    ``ask`` (a question for a person; the run ends waiting for input, and the answer is in
    the result of the next run), ``send_file`` (``{"name", "text", "document_title"?}``: the
    agent sends the user a text file, and with a title stores it as the step's document).
    The files the task was given (``input.files``) are listed in the
    result with their size and SHA-256, read back from storage.
    """

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        data = context.get_context_data()  # type: ignore[attr-defined]
        row: dict[str, Any] = data["row"]
        extras: dict[str, Any] = data["extras"]
        options: dict[str, Any] = row.get("input") or {}
        task_id, context_id = str(context.task_id), str(context.context_id)
        query = context.get_user_input()
        steps = max(0, min(int(options.get("steps", 3)), 100))
        delay = max(0.0, min(float(options.get("delay", 0.05)), 60.0))
        attempt = int(row.get("attempts") or 1)

        async def status(state: int, payload: Any, event_type: str) -> None:
            await event_queue.enqueue_event(
                TaskStatusUpdateEvent(
                    task_id=task_id,
                    context_id=context_id,
                    status=TaskStatus(
                        state=state,  # type: ignore[arg-type]
                        message=new_text_message(json.dumps(payload, ensure_ascii=False)),
                    ),
                    metadata=_metadata(crew_type="demo", event_type=event_type),
                )
            )

        await status(TaskState.TASK_STATE_WORKING, {"step": 0, "of": steps}, "task_started")
        if attempt <= int(options.get("fail_attempts", 0)):
            raise RetryLater(f"demo failure on attempt {attempt} (fail_attempts option)")
        for step in range(1, steps + 1):
            await asyncio.sleep(delay)
            await status(TaskState.TASK_STATE_WORKING, {"step": step, "of": steps}, "task_working")

        question = options.get("ask")
        answer = extras.get("human_response")
        if question and answer is None:
            await status(
                TaskState.TASK_STATE_INPUT_REQUIRED,
                {"role": "demo", "text": str(question), "type": "text", "options": []},
                "human_asked",
            )
            return

        result = {
            "query": query,
            "words": len(query.split()),
            "upper": query.upper(),
            "steps": steps,
            "attempt": attempt,
            "answer": answer,
        }
        if extras.get("files"):
            result["files"] = await _read_files(context)
        wanted = options.get("send_file")
        if isinstance(wanted, dict):
            text = str(wanted.get("text", ""))
            sent = await event_queue.send_file(  # type: ignore[attr-defined]
                str(wanted.get("name") or "demo.txt"), text.encode()
            )
            result["sent_file"] = str(sent.id)
            if wanted.get("document_title"):
                document = await event_queue.save_document(  # type: ignore[attr-defined]
                    str(wanted["document_title"]), text, file_id=sent.id
                )
                result["document"] = str(document.id)
        await event_queue.enqueue_event(
            TaskArtifactUpdateEvent(
                task_id=task_id,
                context_id=context_id,
                artifact=new_text_artifact(
                    name="result", text=json.dumps(result, ensure_ascii=False)
                ),
                last_chunk=True,
            )
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Nothing to release: the worker stops the running ``execute``."""

"""The Vercel AI SDK UI message stream (v1) as a view of a task's event log.

:class:`UIMessageStream` turns events into stream parts, keeping just enough state (the open
text part, open tool calls, an open step) to (1) never send a part the AI SDK would reject
(a delta without its start, an output without its call) and (2) re-open what was open when a
client resumes from the middle of a task.

Event types it understands (written by executors through the event-queue helpers):
``text_delta`` ({text}), ``reasoning_delta`` ({text}), ``tool_usage_started``
({tool_call_id, tool_name, input}), ``tool_usage_finished`` ({tool_call_id, tool_name,
output | error}), ``step_started`` / ``step_finished``, ``file`` ({url, media_type}, or
{file_id, name, media_type, size}: a stored file, whose URL the stream's ``file_url`` makes:
a signed link),
``error`` ({message, retrying}). Every other event becomes a ``data-<event_type>`` part.
Every event gives at least one part, so that the SSE frame carrying its seq has data: an
event with nothing to show (``crew_completed``, whose result comes with the finish; a
``step_finished`` with no step open) becomes a *transient* ``data-<event_type>`` part, which
the AI SDK passes to ``onData`` without adding it to the message.

:func:`task_status_part` is the ``data-task_status`` snapshot of a task (the task stream
sends it when the task waits for input and on every change after that; the process stream
for every task it follows).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from processgpt.domain.events import Event
from processgpt.domain.task import Task, TaskStatus

Part = dict[str, Any]

HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
    "x-vercel-ai-ui-message-stream": "v1",
}
HEARTBEAT = ": heartbeat\n\n"
DONE = "data: [DONE]\n\n"

_SILENT = frozenset({"crew_completed"})  # the result is sent with the finish


def frame(part: Part, event_id: int | str | None = None) -> str:
    """One SSE frame; ``event_id`` becomes the SSE ``id:`` (the event's seq, or a stream's
    cursor)."""
    data = json.dumps(part, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\ndata: {data}\n\n" if event_id is not None else f"data: {data}\n\n"


@dataclass
class UIMessageStream:
    """Encoder state for one task's message."""

    message_id: str
    file_url: Callable[[dict[str, Any]], str | None] | None = None
    """The URL of a stored file a ``file`` event names (None: the event has no URL)."""
    text_id: str | None = None
    reasoning_id: str | None = None
    step_open: bool = False
    tools: dict[str, tuple[str, Any]] = field(default_factory=dict)  # open call → (name, input)

    def start(self) -> list[Part]:
        return [{"type": "start", "messageId": self.message_id}]

    def reopen(self) -> list[Part]:
        """``start`` plus the parts that were open at the resume point, so that a fresh parser
        accepts the deltas that follow."""
        parts = self.start()
        if self.step_open:
            parts.append({"type": "start-step"})
        for call_id, (name, tool_input) in self.tools.items():
            parts.append({"type": "tool-input-start", "toolCallId": call_id, "toolName": name})
            parts.append(
                {
                    "type": "tool-input-available",
                    "toolCallId": call_id,
                    "toolName": name,
                    "input": tool_input,
                }
            )
        if self.reasoning_id is not None:
            parts.append({"type": "reasoning-start", "id": self.reasoning_id})
        if self.text_id is not None:
            parts.append({"type": "text-start", "id": self.text_id})
        return parts

    def _close_text(self) -> list[Part]:
        parts: list[Part] = []
        if self.text_id is not None:
            parts.append({"type": "text-end", "id": self.text_id})
            self.text_id = None
        if self.reasoning_id is not None:
            parts.append({"type": "reasoning-end", "id": self.reasoning_id})
            self.reasoning_id = None
        return parts

    def _close_tools(self, reason: str) -> list[Part]:
        parts: list[Part] = [
            {"type": "tool-output-error", "toolCallId": call_id, "errorText": reason}
            for call_id in self.tools
        ]
        self.tools.clear()
        return parts

    def encode(self, event: Event) -> list[Part]:  # noqa: PLR0912 - one branch per event type
        """The parts for one event: at least one (see the module's contract)."""
        kind, data = event.event_type, event.data
        body: dict[str, Any] = data if isinstance(data, dict) else {}
        if kind == "text_delta":
            return self._delta(
                "text", str(body.get("text", data if isinstance(data, str) else "")), event.seq
            )
        if kind == "reasoning_delta":
            return self._delta("reasoning", str(body.get("text", "")), event.seq)
        parts = self._close_text()
        if kind == "tool_usage_started":
            call_id = str(body.get("tool_call_id") or f"call-{event.seq}")
            name = str(body.get("tool_name") or "tool")
            self.tools[call_id] = (name, body.get("input", {}))
            parts += [
                {"type": "tool-input-start", "toolCallId": call_id, "toolName": name},
                {
                    "type": "tool-input-available",
                    "toolCallId": call_id,
                    "toolName": name,
                    "input": body.get("input", {}),
                },
            ]
        elif kind == "tool_usage_finished":
            call_id = str(body.get("tool_call_id") or "")
            name = str(body.get("tool_name") or "tool")
            if call_id not in self.tools:  # finished without a recorded start: make one
                call_id = call_id or f"call-{event.seq}"
                parts += [
                    {"type": "tool-input-start", "toolCallId": call_id, "toolName": name},
                    {
                        "type": "tool-input-available",
                        "toolCallId": call_id,
                        "toolName": name,
                        "input": {},
                    },
                ]
            self.tools.pop(call_id, None)
            if body.get("error") is not None:
                parts.append(
                    {
                        "type": "tool-output-error",
                        "toolCallId": call_id,
                        "errorText": str(body["error"]),
                    }
                )
            else:
                parts.append(
                    {
                        "type": "tool-output-available",
                        "toolCallId": call_id,
                        "output": body.get("output"),
                    }
                )
        elif kind == "step_started":
            if self.step_open:
                parts.append({"type": "finish-step"})
            parts.append({"type": "start-step"})
            self.step_open = True
        elif kind == "step_finished":
            if self.step_open:
                parts.append({"type": "finish-step"})
                self.step_open = False
        elif kind == "file" and (url := self._file_url(body)):
            parts.append(
                {
                    "type": "file",
                    "url": url,
                    "mediaType": str(body.get("media_type") or "application/octet-stream"),
                }
            )
        elif kind == "error" and not body.get("retrying", False):
            parts += self._close_tools("the task failed")
            parts.append({"type": "error", "errorText": str(body.get("message") or data)})
        elif kind == "task_requeued":
            parts += self._close_tools("the attempt ended; the task runs again")
            parts.append({"type": f"data-{kind}", "data": data})
        elif kind not in _SILENT:
            parts.append({"type": f"data-{kind}", "data": data})
        if not parts:
            parts.append({"type": f"data-{kind}", "data": data, "transient": True})
        return parts

    def _file_url(self, body: dict[str, Any]) -> str | None:
        if body.get("url"):
            return str(body["url"])
        if body.get("file_id") and self.file_url is not None:
            return self.file_url(body)
        return None

    def _delta(self, kind: str, text: str, seq: int) -> list[Part]:
        parts: list[Part] = []
        attr = f"{kind}_id"
        other = "reasoning_id" if kind == "text" else "text_id"
        if getattr(self, other) is not None:
            parts.append({"type": f"{other.split('_', 1)[0]}-end", "id": getattr(self, other)})
            setattr(self, other, None)
        if getattr(self, attr) is None:
            setattr(self, attr, f"{kind}-{seq}")
            parts.append({"type": f"{kind}-start", "id": getattr(self, attr)})
        parts.append({"type": f"{kind}-delta", "id": getattr(self, attr), "delta": text})
        return parts

    def finish(self, task: Task) -> list[Part]:
        """Close everything and end the message for a task in a terminal state."""
        parts = self._close_text()
        parts += self._close_tools("the task ended")
        if task.status is TaskStatus.DONE and task.output is not None:
            parts.append({"type": "data-result", "data": task.output})
        if self.step_open:
            parts.append({"type": "finish-step"})
            self.step_open = False
        reason = {TaskStatus.DONE: "stop", TaskStatus.FAILED: "error"}.get(task.status, "other")
        parts.append({"type": "finish", "finishReason": reason})
        return parts


def task_status_part(
    *,
    task_id: str,
    status: str,
    agent_orch: str,
    activity_id: str | None,
    activity_name: str | None,
    attempts: int,
    last_seq: int,
    output: Any,
    error: Any,
) -> Part:
    """A ``data-task_status`` part: a snapshot of a task, with part ``id`` = the task id (the
    AI SDK replaces a data part that has the same type and id, so a client keeps the latest).
    ``output`` is sent only when the task is DONE, ``error`` only when it FAILED."""
    return {
        "type": "data-task_status",
        "id": task_id,
        "data": {
            "task_id": task_id,
            "status": status,
            "agent_orch": agent_orch,
            "activity_id": activity_id,
            "activity_name": activity_name,
            "attempts": attempts,
            "last_seq": last_seq,
            "output": output if status == TaskStatus.DONE else None,
            "error": error if status == TaskStatus.FAILED else None,
        },
    }


def status_of(task: Task) -> Part:
    """The :func:`task_status_part` of ``task``."""
    return task_status_part(
        task_id=str(task.id),
        status=task.status.value,
        agent_orch=task.agent_orch,
        activity_id=task.activity_id,
        activity_name=task.activity_name,
        attempts=task.attempts,
        last_seq=task.last_seq,
        output=task.output,
        error=task.error,
    )

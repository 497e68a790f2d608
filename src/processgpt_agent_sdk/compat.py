"""The names agents written for process-gpt-agent-sdk import, in one module.

Those agents were written against a2a-sdk 0.3 (``a2a.types``, ``a2a.utils``); this runtime
uses a2a-sdk 1.x, whose types are protobuf messages. Point their imports here and their code
runs unchanged::

    # from a2a.server.agent_execution import AgentExecutor, RequestContext
    # from a2a.server.events import EventQueue
    # from a2a.types import TaskArtifactUpdateEvent, TaskState, TaskStatusUpdateEvent
    # from a2a.utils import new_agent_text_message, new_text_artifact
    from processgpt_agent_sdk.compat import (
        AgentExecutor, EventQueue, RequestContext, TaskArtifactUpdateEvent, TaskState,
        TaskStatusUpdateEvent, new_agent_text_message, new_text_artifact,
    )

* ``ProcessGPTAgentServer(agent_executor, agent_type)``: runs the executor as a worker.
* ``AgentExecutor``, ``RequestContext``, ``EventQueue``: a2a-sdk's server classes (the worker
  hands executors :class:`ProcessGPTRequestContext` and :class:`ProcessGPTEventQueue`).
* The types (``TaskStatusUpdateEvent``, ``TaskState.working``, ``Message``, ``Part``, …) are
  ``a2a.compat.v0_3.types``, which the event queue accepts as they are, with two leniencies
  of older a2a releases: ``TaskStatusUpdateEvent.final`` defaults to ``False``, and an event
  without a context id (``contextId=row["proc_inst_id"]`` of a task outside a process) takes
  the task id as its context id, as the runtime does.
* The helpers of 0.3's ``a2a.utils`` (``new_agent_text_message``, ``new_text_artifact``,
  ``new_task``, …) build those types.
"""

from __future__ import annotations

import uuid
from typing import Any

from a2a.compat.v0_3.types import (
    Artifact,
    DataPart,
    FilePart,
    Message,
    Part,
    Role,
    Task,
    TaskState,
    TaskStatus,
    TextPart,
)
from a2a.compat.v0_3.types import TaskArtifactUpdateEvent as _TaskArtifactUpdateEvent
from a2a.compat.v0_3.types import TaskStatusUpdateEvent as _TaskStatusUpdateEvent
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from pydantic import model_validator

from processgpt.agents.a2a_adapter import ProcessGPTEventQueue, ProcessGPTRequestContext
from processgpt.domain.errors import ContextPreparationError
from processgpt_agent_sdk import ProcessGPTAgentServer


def _context_defaults_to_task(values: Any) -> Any:
    if isinstance(values, dict) and values.get("context_id", values.get("contextId")) is None:
        task_id = values.get("task_id", values.get("taskId"))
        if task_id is not None:
            values = {k: v for k, v in values.items() if k not in ("context_id", "contextId")}
            values["context_id"] = task_id
    return values


class TaskStatusUpdateEvent(_TaskStatusUpdateEvent):
    """0.3's status update; ``final`` optional, a missing context id is the task id."""

    final: bool = False

    @model_validator(mode="before")
    @classmethod
    def _context_id(cls, values: Any) -> Any:
        return _context_defaults_to_task(values)


class TaskArtifactUpdateEvent(_TaskArtifactUpdateEvent):
    """0.3's artifact update; a missing context id is the task id."""

    @model_validator(mode="before")
    @classmethod
    def _context_id(cls, values: Any) -> Any:
        return _context_defaults_to_task(values)


def new_agent_text_message(
    text: str, context_id: str | None = None, task_id: str | None = None
) -> Message:
    """An agent message with one text part (0.3 ``a2a.utils``)."""
    return new_agent_parts_message([Part(root=TextPart(text=text))], context_id, task_id)


def new_agent_parts_message(
    parts: list[Part], context_id: str | None = None, task_id: str | None = None
) -> Message:
    """An agent message with these parts (0.3 ``a2a.utils``)."""
    return Message(
        role=Role.agent,
        parts=parts,
        message_id=str(uuid.uuid4()),
        context_id=context_id,
        task_id=task_id,
    )


def new_artifact(parts: list[Part], name: str, description: str | None = None) -> Artifact:
    """An artifact with these parts (0.3 ``a2a.utils``)."""
    return Artifact(artifact_id=str(uuid.uuid4()), name=name, description=description, parts=parts)


def new_text_artifact(name: str, text: str, description: str | None = None) -> Artifact:
    """An artifact with one text part (0.3 ``a2a.utils``)."""
    return new_artifact([Part(root=TextPart(text=text))], name, description)


def new_data_artifact(name: str, data: dict[str, Any], description: str | None = None) -> Artifact:
    """An artifact with one data part (0.3 ``a2a.utils``); the result is ``data``."""
    return new_artifact([Part(root=DataPart(data=data))], name, description)


def new_task(request: Message) -> Task:
    """A submitted task for a user's message (0.3 ``a2a.utils``). The worker ignores
    enqueued tasks: the task already exists as a row."""
    task_id = request.task_id or str(uuid.uuid4())
    return Task(
        id=task_id,
        context_id=request.context_id or task_id,
        status=TaskStatus(state=TaskState.submitted),
        history=[request],
    )


def get_message_text(message: Message, delimiter: str = "\n") -> str:
    """The text parts of a message, joined (0.3 ``a2a.utils``)."""
    return delimiter.join(p.root.text for p in message.parts if isinstance(p.root, TextPart))


__all__ = [
    "AgentExecutor",
    "Artifact",
    "ContextPreparationError",
    "DataPart",
    "EventQueue",
    "FilePart",
    "Message",
    "Part",
    "ProcessGPTAgentServer",
    "ProcessGPTEventQueue",
    "ProcessGPTRequestContext",
    "RequestContext",
    "Role",
    "Task",
    "TaskArtifactUpdateEvent",
    "TaskState",
    "TaskStatus",
    "TaskStatusUpdateEvent",
    "TextPart",
    "get_message_text",
    "new_agent_parts_message",
    "new_agent_text_message",
    "new_artifact",
    "new_data_artifact",
    "new_task",
    "new_text_artifact",
]

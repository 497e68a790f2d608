"""0.3-style a2a types and helpers, as agents written for process-gpt-agent-sdk use them.

``TaskStatusUpdateEvent`` here defaults ``final`` to ``False`` (older a2a releases did not
require it); everything else is ``a2a.compat.v0_3.types`` unchanged.
"""

from __future__ import annotations

import uuid

from a2a.compat.v0_3.types import (
    Artifact,
    Message,
    Part,
    Role,
    TaskArtifactUpdateEvent,
    TaskState,
    TextPart,
)
from a2a.compat.v0_3.types import TaskStatusUpdateEvent as _TaskStatusUpdateEvent


class TaskStatusUpdateEvent(_TaskStatusUpdateEvent):
    final: bool = False


def new_agent_text_message(
    text: str, context_id: str | None = None, task_id: str | None = None
) -> Message:
    """An agent message with one text part (the 0.3 ``a2a.utils`` helper)."""
    return Message(
        role=Role.agent,
        parts=[Part(root=TextPart(text=text))],
        message_id=str(uuid.uuid4()),
        context_id=context_id,
        task_id=task_id,
    )


def new_text_artifact(name: str, text: str, description: str | None = None) -> Artifact:
    """An artifact with one text part (the 0.3 ``a2a.utils`` helper)."""
    return Artifact(
        artifact_id=str(uuid.uuid4()),
        name=name,
        description=description,
        parts=[Part(root=TextPart(text=text))],
    )


__all__ = [
    "TaskArtifactUpdateEvent",
    "TaskState",
    "TaskStatusUpdateEvent",
    "new_agent_text_message",
    "new_text_artifact",
]

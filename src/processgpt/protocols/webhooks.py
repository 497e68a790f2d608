"""``/v1/webhooks`` and ``/v1/notifications`` bodies and views, shared by the API and the
client."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from processgpt.domain.webhooks import EVENT_TYPES

EventType = Literal[
    "task.completed",
    "task.failed",
    "task.input_required",
    "process.completed",
    "process.incident",
    "human_task.assigned",
]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


class WebhookCreate(BaseModel):
    """A new endpoint: where to POST, and which event types (none: every type)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://hooks.example.com/processgpt", "event_types": ["task.failed"]}
            ]
        },
    )

    url: str = Field(min_length=1, max_length=2000)
    event_types: list[EventType] = Field(default_factory=list, max_length=len(EVENT_TYPES))
    description: str = Field(default="", max_length=500)
    enabled: bool = True


class WebhookPatch(BaseModel):
    """Fields to change (absent: unchanged). Enabling an endpoint again (after a 410 or a
    PATCH) resumes its pending deliveries."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    event_types: list[EventType] | None = Field(default=None, max_length=len(EVENT_TYPES))
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class WebhookView(BaseModel):
    """An endpoint. ``secret`` is the whole signing secret only in the answer that made it
    (or rotated it); every other answer shows it masked (``whsec_…abcd``).
    ``previous_secret_until``: after a rotation, until when deliveries are also signed with
    the secret it replaced (null: only with ``secret``)."""

    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    secret: str
    previous_secret_until: datetime | None = None
    created_at: datetime
    updated_at: datetime


class WebhookPage(BaseModel):
    items: list[WebhookView]


class DeliveryView(BaseModel):
    """One event sent (or to be sent) to an endpoint. ``webhook_id`` is the ``webhook-id``
    header of every attempt; ``attempt_log`` holds one entry per finished attempt (``at``,
    ``status_code`` or ``error``, ``duration_ms``)."""

    id: uuid.UUID
    webhook_id: str
    endpoint_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    status: Literal["PENDING", "DELIVERED", "DEAD"]
    attempts: int
    next_attempt_at: datetime | None
    attempt_log: list[dict[str, Any]]
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


NotificationType = Literal["TASK_ASSIGNED", "INPUT_REQUIRED", "PROCESS_DONE", "PROCESS_INCIDENT"]


class NotificationView(BaseModel):
    """A notification (seed 001's ``notifications``): for ``user_id``, for ``role``, or for
    everyone in the tenant when both are null."""

    id: int
    type: NotificationType
    user_id: str | None
    role: str | None
    todo_id: uuid.UUID | None
    proc_inst_id: uuid.UUID | None
    message: str
    data: dict[str, Any]
    read: bool
    read_at: datetime | None
    created_at: datetime


class NotificationPage(BaseModel):
    items: list[NotificationView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


class MarkedRead(BaseModel):
    marked: int = Field(description="Notifications marked read by this call.")

"""The Execution API's bodies, pages and views, defined once for the server
(:mod:`processgpt.api.routes`) and the client (:mod:`processgpt.client.http`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from processgpt.domain.events import Event
from processgpt.domain.roles import Role
from processgpt.domain.task import Task, TaskFields


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable error code (see the error table).")
    message: str = Field(description="What went wrong, for people.")


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class EventPage(BaseModel):
    items: list[Event]
    next_after: int = Field(description="Pass as `after` for the next page.")


class ProcessCreate(BaseModel):
    """A process instance to start with its first task."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "onboarding",
                    "variables": {"customer": "ACME"},
                    "task": {"agent_orch": "demo", "query": "welcome the customer"},
                }
            ]
        },
    )

    name: str = Field(default="", max_length=500)
    proc_def_id: str | None = Field(default=None, max_length=200)
    variables: dict[str, Any] = Field(default_factory=dict)
    task: TaskFields


class ProcessView(BaseModel):
    process: dict[str, Any]
    tasks: list[Task]


class Answer(BaseModel):
    """The answer to a task waiting for input."""

    model_config = ConfigDict(extra="forbid")
    answer: Any = Field(examples=["yes, go ahead"])


class Feedback(BaseModel):
    """Feedback on a task's work."""

    model_config = ConfigDict(extra="forbid")
    feedback: Any = Field(examples=["shorter, please"])


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="cancelled", max_length=1000)


class OrchestratorView(BaseModel):
    """An orchestrator a worker has registered. ``online``: a worker served it recently."""

    name: str
    description: str
    registered_at: datetime
    last_seen_at: datetime
    online: bool


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200, examples=["ci pipeline"])
    role: Role = Field(default=Role.MEMBER, description="At most the creator's own role.")


class KeyView(BaseModel):
    """An API key as listed: never the key itself."""

    prefix: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class CreatedKey(KeyView):
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")
    tenant_id: str


class TenantUpdate(BaseModel):
    """Operator settings of a tenant; absent fields are kept."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"max_pending_tasks": 5000}]}
    )

    max_pending_tasks: int | None = Field(
        default=None, ge=1, le=100_000_000, description="null: the server's default limit."
    )


class TenantView(BaseModel):
    id: str
    name: str
    max_pending_tasks: int | None
    created_at: datetime

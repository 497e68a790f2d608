"""The Execution API's bodies, pages and views, defined once for the server
(:mod:`processgpt.api.routes`) and the client (:mod:`processgpt.client.http`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from processgpt.domain.events import Event
from processgpt.domain.roles import Role
from processgpt.domain.task import Task

WARNING_HEADER = "X-ProcessGPT-Warning"
"""The response header that repeats each of a created task's ``warnings`` (one header per
warning). Not RFC 7234's ``Warning``, which RFC 9111 made obsolete."""


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable error code (see the error table).")
    message: str = Field(description="What went wrong, for people.")
    details: list[dict[str, Any]] | None = Field(
        default=None,
        description="Structured problems, when the error has several (e.g. "
        '`definition_invalid`: `[{"id": element id or null, "problem"}]`).',
    )


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "details"?}}``."""

    error: ErrorDetail


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class EventPage(BaseModel):
    items: list[Event]
    next_after: int = Field(description="Pass as `after` for the next page.")


class ProcessView(BaseModel):
    """The one-task form's instance (its row) and its tasks."""

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


class WorkerView(BaseModel):
    """A worker process as its ``workers`` row says. ``lost``: no heartbeat for 30 s (it was
    killed, froze, or its host is gone); lost rows are deleted after an hour."""

    id: str = Field(description="The worker's consumer name (`consumer` of the tasks it runs).")
    host: str
    pid: int
    version: str
    agents: list[str] = Field(description="The agents (orchestrators) it serves.")
    slots: int = Field(description="Tasks it runs at once at most (its concurrency).")
    slots_in_use: int = Field(description="Tasks it was running at its last heartbeat.")
    started_at: datetime
    last_heartbeat_at: datetime
    lost: bool


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
        extra="forbid", json_schema_extra={"examples": [{"max_pending_tasks": 5000, "weight": 2}]}
    )

    max_pending_tasks: int | None = Field(
        default=None, ge=1, le=100_000_000, description="null: the server's default limit."
    )
    weight: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="The tenant's share of the workers while several tenants wait (a tenant "
        "of weight 3 gets three tasks started for one of a tenant of weight 1). Default 1.",
    )
    max_tasks_per_second: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="The most of the tenant's tasks the workers start per second (bursts up "
        "to one second's worth); null: no limit.",
    )
    retention_days: int | None = Field(
        default=None,
        ge=0,
        le=36_500,
        description="Days finished tasks, their events and finished process instances are "
        "kept; null: the server's default; 0: forever.",
    )


class TenantView(BaseModel):
    id: str
    name: str
    max_pending_tasks: int | None
    weight: int
    max_tasks_per_second: float | None
    retention_days: int | None = None
    created_at: datetime


DEFINITION_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"

PUBLISH_EXAMPLE: dict[str, Any] = {
    "id": "leave_request",
    "name": "Leave request",
    "definition": {
        "processDefinitionId": "leave_request",
        "processDefinitionName": "Leave request",
        "roles": [{"name": "manager", "default": "manager@example.com"}],
        "events": [{"id": "start", "type": "startEvent"}, {"id": "end", "type": "endEvent"}],
        "activities": [{"id": "approve", "name": "Approve", "type": "userTask", "role": "manager"}],
        "sequences": [
            {"id": "f1", "source": "start", "target": "approve"},
            {"id": "f2", "source": "approve", "target": "end"},
        ],
    },
}


class FormBody(BaseModel):
    """A form a definition's steps use (``tool: formHandler:<form id>``), stored with it."""

    model_config = ConfigDict(extra="forbid")

    fields: list[dict[str, Any]] = Field(default_factory=list, max_length=500)
    html: str = Field(default="", max_length=500_000)


class FormView(BaseModel):
    """A stored form (``GET /v1/forms/{id}``): what a person's work item with ``tool:
    formHandler:<id>`` asks for. ``fields`` as ProcessGPT describes them (``key``, ``text``,
    ``type``, ``options``?); ``html`` when the form was published with one."""

    id: str
    proc_def_id: str | None
    fields: list[dict[str, Any]]
    html: str


class ProcessDefinitionPublish(BaseModel):
    """A definition to publish as the next version of ``id``: ProcessGPT's definition JSON in
    ``definition``, or BPMN 2.0 XML in ``bpmn`` (exactly one). ``forms``: the forms its steps
    use that are not stored yet (form id → form)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PUBLISH_EXAMPLE]})

    id: str = Field(pattern=DEFINITION_ID_PATTERN, examples=["leave_request"])
    name: str | None = Field(default=None, max_length=500)
    definition: dict[str, Any] | None = None
    bpmn: str | None = Field(default=None, min_length=1, max_length=2_000_000)
    forms: dict[str, FormBody] = Field(default_factory=dict, max_length=200)


class ProcessDefinitionVersionView(BaseModel):
    """One published version. ``hash``: the fingerprint of its content (format, name, source,
    forms)."""

    id: str
    version: int
    name: str
    format: str = Field(description="`processgpt_json` or `bpmn`.")
    hash: str
    created_at: datetime


class PublishedDefinition(ProcessDefinitionVersionView):
    created: bool = Field(
        description="False: the content equals the latest version, which is returned (200)."
    )


class ProcessDefinitionView(BaseModel):
    """A definition with every version, oldest first."""

    id: str
    name: str
    latest_version: int
    versions: list[ProcessDefinitionVersionView]


class ProcessDefinitionVersionDetail(ProcessDefinitionVersionView):
    """A whole version: the compiled graph the engine runs and the source as published."""

    graph: dict[str, Any]
    source: Any = Field(description="The ProcessGPT JSON object, or the BPMN XML text.")


class ProcessDefinitionPage(BaseModel):
    items: list[ProcessDefinitionVersionView]
    next_after: str | None = Field(description="Pass as `after` for the next page.")

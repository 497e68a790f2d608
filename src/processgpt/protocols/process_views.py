"""Bodies and views of the process instance routes (``/v1/processes``, ``/v1/worklist``,
``/v1/tasks/{id}/complete``, ``/complete``), defined once for the server
(:mod:`processgpt.api.routes`) and the client (:mod:`processgpt.client.process_api`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from processgpt.domain.process.instance import ChildIncident, HistoryLine, ProcessInstance
from processgpt.domain.process.state import Incident, InstanceStatus
from processgpt.domain.task import Task, TaskFields

IDEMPOTENCY_KEY_FIELD: Any = Field(
    default=None,
    min_length=1,
    max_length=200,
    description="Same key, same result: a repeated request answers what the first one did.",
)
_ROLE_BINDINGS: Any = Field(
    default_factory=dict,
    max_length=200,
    description="Role bindings: role name → the user (or group) its steps go to; a role "
    "not bound goes to the definition's default for it.",
    examples=[{"manager": "kim@example.com"}],
)


class ProcessCreate(BaseModel):
    """``POST /v1/processes``, in one of two forms.

    * **An instance of a published definition** (no ``task``): ``proc_def_id``, and
      optionally ``version`` (default: the latest), ``variables``, ``roles``, ``name``,
      ``idempotency_key``; its first steps are created in the same transaction.
    * **The one-task form** (``task`` given): an instance (no engine drives it) with that
      first task; ``proc_def_id`` optional, ``version``/``roles``/``idempotency_key`` not
      allowed.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "proc_def_id": "leave_request",
                    "name": "Kim's leave",
                    "variables": {"days": 3},
                    "roles": {"manager": "lee@example.com"},
                    "idempotency_key": "leave-2026-kim",
                },
                {
                    "name": "onboarding",
                    "variables": {"customer": "ACME"},
                    "task": {"agent_orch": "demo", "query": "welcome the customer"},
                },
            ]
        },
    )

    name: str = Field(default="", max_length=500)
    proc_def_id: str | None = Field(default=None, max_length=200)
    version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="Default: the latest version."
    )
    variables: dict[str, Any] = Field(default_factory=dict)
    roles: dict[str, str] = _ROLE_BINDINGS
    idempotency_key: str | None = IDEMPOTENCY_KEY_FIELD
    task: TaskFields | None = Field(default=None, description="The one-task form's first task.")

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if self.task is None and self.proc_def_id is None:
            raise ValueError(
                "proc_def_id: required to start an instance of a definition "
                "(or give task, the one-task form)"
            )
        if self.task is not None and (
            self.version is not None or self.roles or self.idempotency_key is not None
        ):
            raise ValueError(
                "version, roles and idempotency_key start instances of a definition: "
                "leave them out with task (the one-task form)"
            )
        return self


class CompatComplete(BaseModel):
    """ProcessGPT's ``/complete``: a definition id and its input data start an instance.
    The id may be named ``process_definition_id`` or ``proc_def_id``; the data ``input``,
    ``variables`` or ``data`` (one of each)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"process_definition_id": "leave_request", "input": {"days": 3}},
            ]
        },
    )

    process_definition_id: str | None = Field(default=None, min_length=1, max_length=200)
    proc_def_id: str | None = Field(default=None, min_length=1, max_length=200)
    input: dict[str, Any] | None = None
    variables: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    roles: dict[str, str] = _ROLE_BINDINGS
    name: str = Field(default="", max_length=500)
    idempotency_key: str | None = IDEMPOTENCY_KEY_FIELD

    @model_validator(mode="after")
    def _one_of_each(self) -> Self:
        ids = [v for v in (self.process_definition_id, self.proc_def_id) if v is not None]
        if len(ids) != 1:
            raise ValueError("give the definition id once: process_definition_id or proc_def_id")
        given = [v for v in (self.input, self.variables, self.data) if v is not None]
        if len(given) > 1:
            raise ValueError("give the input data once: input, variables or data")
        return self

    @property
    def definition_id(self) -> str:
        """The definition id, whichever name it came under (the validator requires one)."""
        if self.process_definition_id is not None:
            return self.process_definition_id
        return self.proc_def_id or ""

    @property
    def values(self) -> dict[str, Any]:
        return next((v for v in (self.input, self.variables, self.data) if v is not None), {})


class IncidentView(BaseModel):
    """An open incident: where the instance stopped and why."""

    id: str
    kind: str = Field(description="`no_flow`, `condition`, `task_failed`, `child_failed`, …")
    node_id: str
    activation: int
    reason: str
    at: datetime

    @classmethod
    def of(cls, incident: Incident) -> IncidentView:
        return cls(
            id=incident.id,
            kind=incident.kind.value,
            node_id=incident.node_id,
            activation=incident.activation,
            reason=incident.reason,
            at=incident.at,
        )


class ChildIncidentView(IncidentView):
    """An open incident of a child instance (call activity, sub-process) or a deeper one: it
    holds the step of this instance that started the child; resolve it on ``child_id``."""

    child_id: uuid.UUID

    @classmethod
    def of_child(cls, found: ChildIncident) -> ChildIncidentView:
        return cls(child_id=found.child_id, **IncidentView.of(found.incident).model_dump())


class ProcessInstanceView(BaseModel):
    """A process instance: its status, where it waits, its variables and open incidents
    (``child_incidents``: those of its child instances, resolved there)."""

    id: uuid.UUID
    proc_def_id: str | None
    version: int | None = Field(description="The definition version it is pinned to.")
    name: str
    status: InstanceStatus
    current_activity_ids: list[str]
    variables: dict[str, Any]
    incidents: list[IncidentView]
    child_incidents: list[ChildIncidentView]
    parent_id: uuid.UUID | None
    start_date: datetime | None
    end_date: datetime | None

    @classmethod
    def fields_of(cls, inst: ProcessInstance) -> dict[str, Any]:
        return {
            "id": inst.id,
            "proc_def_id": inst.proc_def_id,
            "version": inst.version,
            "name": inst.name,
            "status": inst.status,
            "current_activity_ids": list(inst.current_activity_ids),
            "variables": dict(inst.variables),
            "incidents": [IncidentView.of(i) for i in inst.incidents],
            "child_incidents": [ChildIncidentView.of_child(c) for c in inst.child_incidents],
            "parent_id": inst.parent_id,
            "start_date": inst.start_date,
            "end_date": inst.end_date,
        }

    @classmethod
    def of(cls, inst: ProcessInstance) -> ProcessInstanceView:
        return cls(**cls.fields_of(inst))


class ProcessDetail(ProcessInstanceView):
    """An instance with its work: ``open_tasks`` (not ended: waiting for a person or an
    agent), ``tasks`` (all of them, oldest first), and ``process``, the instance's row as
    the one-task form answers it (``proc_inst_id``, ``status``, ``variables_data``, …)."""

    open_tasks: list[Task]
    tasks: list[Task]
    process: dict[str, Any]

    @classmethod
    def build(
        cls, inst: ProcessInstance, row: Mapping[str, Any], tasks: list[Task]
    ) -> ProcessDetail:
        open_tasks = [t for t in tasks if not t.status.is_terminal]
        shown = {k: v for k, v in row.items() if k != "state"}
        return cls(**cls.fields_of(inst), open_tasks=open_tasks, tasks=tasks, process=shown)


class ProcessInstancePage(BaseModel):
    items: list[ProcessInstanceView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class HistoryLineView(BaseModel):
    """One line of an instance's history (``seq`` 1, 2, … without gaps)."""

    seq: int
    kind: str = Field(
        description="`instance_started`, `step_started`, `step_completed`, "
        "`gateway_decision`, `incident`, `instance_completed`, …"
    )
    node_id: str | None
    activation: int | None
    data: dict[str, Any]
    at: datetime

    @classmethod
    def of(cls, line: HistoryLine) -> HistoryLineView:
        return cls(
            seq=line.seq,
            kind=line.kind,
            node_id=line.node_id,
            activation=line.activation,
            data=dict(line.data),
            at=line.at,
        )


class HistoryPage(BaseModel):
    items: list[HistoryLineView]
    next_after: int = Field(description="Pass as `after` for the next page.")


class ProcessCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=1000, examples=["the customer withdrew"])


class ProcessMigrate(BaseModel):
    """Move a running instance to another version of its definition; ``mapping`` renames
    the nodes where it waits (old id → new id; unmapped ids keep their name)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"to_version": 2, "mapping": {"review": "check"}}]},
    )

    to_version: int = Field(ge=1, le=2**31 - 1)
    mapping: dict[str, str] = Field(default_factory=dict, max_length=1000)


class IncidentResolve(BaseModel):
    """Retry where the incident stopped, after merging ``variables`` (e.g. a fixed value a
    gateway's conditions read)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"variables": {"amount": 120}}]}
    )

    variables: dict[str, Any] = Field(default_factory=dict)


class TaskComplete(BaseModel):
    """A person's work item completed: ``output`` is the form's values (or any object for a
    step without a form). ``idempotency_key`` (or the ``Idempotency-Key`` header): the same
    key again answers the same task instead of 409."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"output": {"approval_form": {"decision": "approve"}}}],
        },
    )

    output: dict[str, Any]
    idempotency_key: str | None = IDEMPOTENCY_KEY_FIELD

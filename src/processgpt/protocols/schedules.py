"""``/v1/schedules`` bodies and views, shared by the API and the client."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from processgpt.domain.task import TaskFields
from processgpt.protocols.views import DEFINITION_ID_PATTERN

SCHEDULE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
"""Names of schedules made through the API (those made from a definition's timer start
events are ``<definition id>:<start node id>``, so the two never collide)."""


class ScheduledTask(TaskFields):
    """The task a schedule queues at each tick: the fields of ``POST /v1/tasks`` except
    ``run_at`` and ``proc_inst_id`` (each tick's task runs at once, on its own)."""

    @model_validator(mode="after")
    def _no_fixed_time(self) -> ScheduledTask:
        if self.run_at is not None or self.proc_inst_id is not None:
            raise ValueError("a scheduled task takes neither run_at nor proc_inst_id")
        return self


class ScheduledProcess(BaseModel):
    """The process a schedule starts at each tick."""

    model_config = ConfigDict(extra="forbid")

    proc_def_id: str = Field(pattern=DEFINITION_ID_PATTERN, examples=["monthly_report"])
    version: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="Pinned version; null: the latest at each tick.",
    )
    variables: dict[str, Any] = Field(default_factory=dict)
    roles: dict[str, str] = Field(default_factory=dict, description="Role → user or group.")


class ScheduleCreate(BaseModel):
    """A new schedule: a five-field cron expression (or ``@daily``…) read in ``timezone``, and
    exactly one of ``process`` or ``task``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "weekday-digest",
                    "cron": "0 9 * * MON-FRI",
                    "timezone": "Europe/Berlin",
                    "task": {"agent_orch": "demo", "query": "write the digest"},
                }
            ]
        },
    )

    name: str = Field(pattern=SCHEDULE_NAME_PATTERN)
    cron: str = Field(min_length=1, max_length=200, examples=["0 9 * * MON-FRI"])
    timezone: str = Field(default="UTC", min_length=1, max_length=100, examples=["Europe/Berlin"])
    enabled: bool = True
    process: ScheduledProcess | None = None
    task: ScheduledTask | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ScheduleCreate:
        if (self.process is None) == (self.task is None):
            raise ValueError("give exactly one of `process` or `task`")
        return self


class SchedulePatch(BaseModel):
    """Change a schedule: absent fields are kept. Enabling (again) or changing the cron
    expression or zone moves the next tick to the first one after now."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"enabled": False}, {"cron": "30 8 * * *", "timezone": "Asia/Tokyo"}]
        },
    )

    enabled: bool | None = None
    cron: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, min_length=1, max_length=100)
    variables: dict[str, Any] | None = None


class ScheduleView(BaseModel):
    id: uuid.UUID
    name: str
    source: Literal["api", "definition"] = Field(
        description="`definition`: made from a timer start event (replaced at each publish)."
    )
    cron: str | None
    timezone: str
    cycle: str | None = Field(description="An ISO 8601 repeating interval (timer starts).")
    target: Literal["process", "task"]
    proc_def_id: str | None
    version: int | None
    start_node: str | None
    task: dict[str, Any] | None
    variables: dict[str, Any]
    roles: dict[str, str]
    enabled: bool
    next_run_at: datetime | None = Field(description="The next tick; null: none is due.")
    last_run_at: datetime | None
    runs: int = Field(description="Ticks that started their work.")
    skipped: int = Field(description="Ticks missed while nothing ran (each ran once, not N times).")
    last_error: str | None = Field(description="Why the last tick could not start its work.")
    created_at: datetime
    updated_at: datetime


class SchedulePage(BaseModel):
    items: list[ScheduleView]
    next_after: str | None = Field(description="Pass as `after` for the next page.")

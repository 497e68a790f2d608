"""Tasks: their states, what a submission may contain, and the retry policy."""

from __future__ import annotations

import enum
import random
import re
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_QUERY_CHARS = 100_000
"""Largest accepted ``query`` (characters); the schema enforces the same limit."""
MAX_INPUT_BYTES = 1_000_000
"""Largest accepted ``input`` once encoded as JSON."""
AGENT_ORCH_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
"""What an orchestrator name may look like; the schema enforces the same pattern."""


def check_text(value: str) -> None:
    """Raise ``ValueError`` for text Postgres cannot store: NUL characters, or lone surrogates
    (which JSON's ``\\udXXX`` escapes can produce and UTF-8 cannot carry)."""
    if "\x00" in value:
        raise ValueError("text may not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None


class TaskStatus(enum.StrEnum):
    """States of a task (the ``todo_status`` enum in the schema).

    PENDING → IN_PROGRESS → DONE | FAILED | CANCELLED | INPUT_REQUIRED; IN_PROGRESS may go back
    to PENDING (retry, lost lease, hand-back on shutdown), INPUT_REQUIRED back to PENDING when a
    person answers, FAILED/CANCELLED back to PENDING when re-queued.
    """

    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    INPUT_REQUIRED = "INPUT_REQUIRED"
    TODO = "TODO"
    """A person's open work item (a human process step, or an agent's draft waiting for a
    person): workers never claim it; it ends DONE (completed through the API) or CANCELLED."""

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TaskFields(BaseModel):
    """What a caller may give when creating a task (``POST /v1/tasks``: the idempotency key
    comes from the ``Idempotency-Key`` header). Validation here is the first gate; the
    schema's CHECK constraints are the last."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_orch: str = Field(
        description="The agent: an orchestrator or one of the tenant's agent profiles.",
        examples=["demo"],
    )
    query: str = Field(default="", max_length=MAX_QUERY_CHARS, description="What to do.")
    input: dict[str, Any] = Field(
        default_factory=dict, description="A JSON object given to the agent."
    )
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first.")
    run_at: datetime | None = Field(default=None, description="Not run before this time.")
    max_attempts: int = Field(default=3, ge=1, le=100)
    proc_inst_id: uuid.UUID | None = Field(
        default=None, description="The process instance the task belongs to."
    )
    activity_id: str | None = Field(default=None, max_length=200)
    activity_name: str | None = Field(default=None, max_length=500)
    user_id: str | None = Field(default=None, max_length=2000)
    tool: str | None = Field(
        default=None, max_length=500, description="`formHandler:<form id>` names a form."
    )
    description: str | None = Field(default=None, max_length=MAX_QUERY_CHARS)

    @field_validator("agent_orch")
    @classmethod
    def _agent_orch_shape(cls, value: str) -> str:
        if not AGENT_ORCH_PATTERN.match(value):
            raise ValueError(
                "agent_orch must be 1-64 characters of a-z, 0-9, '_', '.', ':' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("query", "description", "activity_id", "activity_name", "user_id", "tool")
    @classmethod
    def _storable_text(cls, value: str | None) -> str | None:
        if value is not None:
            check_text(value)
        return value


class TaskSubmission(TaskFields):
    """A task to submit: its fields plus an optional idempotency key (same key, same task)."""

    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    traceparent: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
    )
    """The W3C trace context of the request that creates the task (set by the server, from the
    request's ``traceparent``; see :mod:`processgpt.tracing`)."""
    tracestate: str | None = Field(default=None, max_length=512)


class Task(BaseModel):
    """A task as stored in ``todolist`` (the columns a caller may rely on)."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    tenant_id: str
    agent_orch: str
    status: TaskStatus
    query: str
    input: dict[str, Any]
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    proc_inst_id: uuid.UUID | None = None
    activity_id: str | None = None
    activity_name: str | None = None
    activation: int | None = None
    """Set on the work item of a process step: the activity's activation (1, 2, … when a
    loop comes back to it)."""
    role: str | None = None
    due_at: datetime | None = None
    user_id: str | None = None
    tool: str | None = None
    description: str | None = None
    agent_profile: str | None = None
    consumer: str | None = None
    lease_until: datetime | None = None
    last_seq: int = 0
    output: Any = None
    draft: Any = None
    error: dict[str, Any] | None = None
    feedback: Any = None
    human_response: Any = None
    idempotency_key: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    traceparent: str | None = None
    """The W3C trace context the task was created in (the worker's span links to it)."""
    warnings: list[str] = Field(
        default_factory=list,
        description="Things the caller should know, for people (not stored): while the task "
        "is PENDING and no live worker serves its agent, one says so.",
    )


def unserved_agent_warning(agent_orch: str) -> str:
    """The warning on a PENDING task whose agent no live worker serves."""
    return (
        f"no live worker serves agent {agent_orch!r}: the task waits in the queue until one "
        f"starts (processgpt worker --agent {agent_orch})"
    )


class RetryPolicy(BaseModel):
    """Exponential backoff with full jitter: attempt n waits a random time in
    ``[base·2^(n-1)·(1-jitter), base·2^(n-1)]``, capped at ``max_delay`` seconds."""

    model_config = ConfigDict(frozen=True)

    base_delay: float = Field(default=1.0, gt=0)
    max_delay: float = Field(default=300.0, gt=0)
    jitter: float = Field(default=0.5, ge=0, le=1)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` after attempt ``attempt`` failed."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempt - 1))
        r = rng.random() if rng is not None else random.random()  # noqa: S311 - jitter
        return ceiling * (1 - self.jitter * r)

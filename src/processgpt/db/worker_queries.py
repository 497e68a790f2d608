"""The statements a worker runs: claim, heartbeat, lease recovery, context loading and the
batched, fenced write of events and results."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.domain.task import TaskStatus

SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan"}
"""Session settings for connections that run these statements. Each has one good plan whatever
its parameters (rows found by primary key, or along the claim index), so it is planned once per
connection. Left to choose, Postgres re-plans the claim at every execution, because its
generic plan is costed for a LIMIT of a tenth of the backlog; the planning cost more than
running it."""

_CONTEXT_COLUMNS = ("ctx_form", "ctx_users", "ctx_tenant_mcp", "ctx_agent_profile", "ctx_sources")


def task_row(claimed: asyncpg.Record) -> dict[str, Any]:
    """The task's ``todolist`` row from a claimed record."""
    return {k: v for k, v in claimed.items() if not k.startswith("ctx_")}


def loaded_context(claimed: asyncpg.Record) -> dict[str, Any]:
    """What the claim read for the task's context from a claimed record: ``form``, ``users``,
    ``tenant_mcp``, ``agent_profile``, ``sources`` (None when absent)."""
    return {key[4:]: claimed[key] for key in _CONTEXT_COLUMNS}


@dataclass(slots=True)
class EventRow:
    """An event with its sequence number, its data already JSON-encoded."""

    seq: int
    job_id: str
    event_type: str
    crew_type: str | None
    status: str | None
    data_json: str
    text: list[str] | None = None  # a text delta still growing: data is {"text": joined}
    text_chars: int = 0


@dataclass(slots=True)
class TaskWrite:
    """Everything one batch writes for one task, fenced by ``fence``. ``None`` fields are left
    unchanged; ``status`` set means the attempt ends (the lease is released)."""

    todo_id: uuid.UUID
    fence: int
    events: list[EventRow] = field(default_factory=list)
    status: TaskStatus | None = None
    output_json: str | None = None
    draft_json: str | None = None
    error_json: str | None = None
    retry_delay: float | None = None  # seconds from the database's now() until due again
    attempts: int | None = None


class WorkerQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self, agent_orchs: list[str], limit: int, consumer: str, lease_seconds: float
    ) -> list[asyncpg.Record]:
        """Claim up to ``limit`` tasks: each record is the task's row plus what its context
        needs (see :func:`task_row` and :func:`loaded_context`)."""
        return await self.db.fetch(
            QUERIES["claim_tasks"], agent_orchs, limit, consumer, lease_seconds
        )

    async def seconds_until_next_run(self, agent_orchs: list[str]) -> float | None:
        """Seconds (by the database's clock) until the next delayed task is due; None if
        nothing waits."""
        value = await self.db.fetchval(QUERIES["next_run_at"], agent_orchs)
        return None if value is None else float(value)

    async def extend_leases(
        self, leases: list[tuple[uuid.UUID, int]], lease_seconds: float
    ) -> set[uuid.UUID]:
        """Extend the given leases; return the ids whose lease is still held."""
        rows = await self.db.fetch(
            QUERIES["extend_leases"],
            [t for t, _ in leases],
            [f for _, f in leases],
            lease_seconds,
        )
        return {r["id"] for r in rows}

    async def recover_expired(self, limit: int = 100) -> list[asyncpg.Record]:
        return await self.db.fetch(QUERIES["recover_expired"], limit)

    async def apply_batch(self, writes: list[TaskWrite]) -> set[uuid.UUID]:
        """Write a batch (at most one write per task) in one statement; return the tasks
        whose fence held (their writes are durable). The others lost their lease and nothing
        of theirs was written."""
        rows = await self.db.fetch(
            QUERIES["apply_batch"],
            [
                (
                    w.todo_id,
                    w.fence,
                    w.events[-1].seq if w.events else None,
                    w.status,
                    w.output_json,
                    w.draft_json,
                    w.error_json,
                    w.retry_delay,
                    w.attempts,
                )
                for w in writes
            ],
            [
                (w.todo_id, e.seq, e.job_id, e.event_type, e.crew_type, e.status, e.data_json)
                for w in writes
                for e in w.events
            ],
        )
        return {r["id"] for r in rows}

    async def fail_task_write(self, todo_id: uuid.UUID, fence: int, error: dict[str, Any]) -> bool:
        """Fail a running task whose write the database refused; False if the fence no
        longer holds."""
        row = await self.db.fetchrow(QUERIES["fail_task_write"], todo_id, fence, error)
        return row is not None

    async def register_orchestrators(self, names: dict[str, str]) -> None:
        await self.db.execute(QUERIES["register_orchestrators"], list(names), list(names.values()))

"""The learning step's queue: ``memory_feedback`` rows claimed with ``FOR UPDATE SKIP LOCKED``
and a lease; finishing is fenced by the attempt number, so a row taken over by another worker
(after a crash) is applied by one of them only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES


@dataclass(frozen=True)
class FeedbackRow:
    id: uuid.UUID
    tenant_id: str
    task_id: uuid.UUID | None
    signal: str
    agent: str | None
    proc_def_id: str | None
    activity_id: str | None
    user_id: str | None
    query: str | None
    answer: Any
    feedback: Any
    diff: Any
    attempts: int

    @classmethod
    def from_record(cls, record: Any) -> FeedbackRow:
        return cls(**{name: record[name] for name in cls.__dataclass_fields__})


class FeedbackQueue:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, consumer: str, limit: int, lease_seconds: float) -> list[FeedbackRow]:
        rows = await self.db.fetch(QUERIES["feedback_claim"], consumer, limit, lease_seconds)
        return [FeedbackRow.from_record(r) for r in rows]

    async def finish(
        self,
        row: FeedbackRow,
        outcome: dict[str, Any],
        *,
        failed: bool = False,
        conn: asyncpg.Connection | None = None,
    ) -> bool:
        """Mark the row done (or failed); False when this attempt no longer owns it."""
        target: Any = conn if conn is not None else self.db
        done = await target.fetchval(
            QUERIES["feedback_finish"],
            row.id,
            row.attempts,
            "failed" if failed else "done",
            outcome,
        )
        return done is not None

    async def retry(self, row: FeedbackRow, delay: float, outcome: dict[str, Any]) -> None:
        await self.db.fetchval(QUERIES["feedback_retry"], row.id, row.attempts, delay, outcome)

    async def of_task(self, tenant_id: str, task_id: uuid.UUID) -> list[dict[str, Any]]:
        return [
            dict(r) for r in await self.db.fetch(QUERIES["feedback_of_task"], tenant_id, task_id)
        ]

"""Memory in a task's context: before the executor runs, the pinned items of the task's scope
and the best items for its instruction and input are put in ``extras["memory"]`` (a delimited
block with item ids), recorded in ``memory_uses`` and logged as a ``memory_used`` event, so a
person can see why an agent did what it did. The task's memory tools are bound here too."""

from __future__ import annotations

import json
import logging
from typing import Any

from processgpt.domain.events import encode_json
from processgpt.domain.memory import MemoryScope
from processgpt.memory.bound import TaskMemory
from processgpt.memory.service import MemoryService
from processgpt.runtime.run import TaskRun

log = logging.getLogger(__name__)

_MAX_QUERY_TEXT = 2000
MEMORY_EVENT = "memory_used"


def task_scope(row: dict[str, Any]) -> MemoryScope:
    """The scope a task searches in: its agent profile (else its orchestrator), process
    definition, activity and user."""
    return MemoryScope(
        agent=row.get("agent_profile") or row.get("agent_orch"),
        proc_def_id=row.get("proc_def_id"),
        activity_id=row.get("activity_id"),
        user_id=row.get("user_id"),
    )


def retrieval_text(row: dict[str, Any]) -> str:
    """What the task is about: its activity, instruction and input (shortened)."""
    parts = [str(row.get("activity_name") or ""), str(row.get("query") or "")]
    data = row.get("input")
    if isinstance(data, dict):
        shown = {k: v for k, v in data.items() if k not in ("history", "instructions", "model")}
        if shown:
            parts.append(json.dumps(shown, ensure_ascii=False, default=str))
    return " ".join(p for p in parts if p).strip()[:_MAX_QUERY_TEXT]


class MemoryContext:
    """Prepares the memory of each run (see the module)."""

    def __init__(self, service: MemoryService) -> None:
        self.service = service

    async def prepare(self, run: TaskRun) -> None:
        """Bind the run's memory tools and add its memory block. Errors propagate: a task
        whose context cannot be prepared is retried like any failed attempt."""
        row = run.row
        tenant_id = str(row["tenant_id"])
        scope = task_scope(row)
        run.memory = TaskMemory(self.service, tenant_id, scope, run.id)
        if not await self.service.has_active(tenant_id):
            return  # the common case, answered without a round trip most of the time
        found = await self.service.for_context(tenant_id, scope, retrieval_text(row))
        if found.empty:
            return
        run.context["memory"] = {
            "block": found.block(),
            "items": [str(u[0]) for u in found.uses()],
        }
        await self.service.repo.record_uses(tenant_id, run.id, found.uses())
        await run.emit_fields(
            MEMORY_EVENT, MEMORY_EVENT, "agent", None, encode_json(found.event_data())
        )

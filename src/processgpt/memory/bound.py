"""Memory bound to one task: what its agent's ``memory_search`` and ``memory_save`` tools
reach. The tenant and scope are fixed by the runtime from the task's row; nothing a model
passes can widen them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from processgpt.db.memories import NewMemory
from processgpt.domain.errors import InvalidInput
from processgpt.domain.memory import (
    MAX_CONTENT,
    MemoryKind,
    MemoryScope,
    MemorySource,
    MemoryStatus,
)
from processgpt.memory.service import MemoryService

MAX_TOOL_RESULTS = 10


@dataclass(frozen=True)
class TaskMemory:
    """The memory of one task's tenant and scope."""

    service: MemoryService
    tenant_id: str
    scope: MemoryScope
    task_id: uuid.UUID

    async def search(self, query: str, limit: int = 5) -> list[dict[str, Any]]:
        """The best items for ``query`` in the task's scope (recorded as the task's uses)."""
        if not query.strip():
            raise InvalidInput("memory_search needs a query", field="query")
        limit = max(1, min(limit, MAX_TOOL_RESULTS))
        hits = await self.service.search(self.tenant_id, self.scope, query[:4000], limit=limit)
        await self.service.repo.record_uses(
            self.tenant_id,
            self.task_id,
            [(h.item.id, "tool", i, h.score) for i, h in enumerate(hits, 1)],
        )
        return [
            {"id": str(h.item.id), "kind": h.item.kind.value, "content": h.item.content}
            for h in hits
        ]

    async def propose(self, content: str, kind: str = "guideline") -> dict[str, Any]:
        """A proposal for the Agent Boss (never active until approved)."""
        content = content.strip()
        if not content or len(content) > MAX_CONTENT:
            raise InvalidInput(f"memory_save needs 1 to {MAX_CONTENT} characters", field="content")
        try:
            memory_kind = MemoryKind(kind)
        except ValueError:
            raise InvalidInput("kind must be fact, guideline or preference", field="kind") from None
        if memory_kind is MemoryKind.CORRECTION:
            raise InvalidInput("kind must be fact, guideline or preference", field="kind")
        vector, model = await self.service.passage(content)
        item, created = await self.service.add(
            self.tenant_id,
            NewMemory(
                scope=self.scope,
                kind=memory_kind,
                content=content,
                status=MemoryStatus.PROPOSED,
                source=MemorySource.AGENT,
                embedding=vector,
                embedding_model=model,
                source_task_id=self.task_id,
                created_by=f"task:{self.task_id}",
            ),
            actor=f"task:{self.task_id}",
            reason="proposed by the agent",
        )
        return {"id": str(item.id), "status": item.status.value, "new": created}

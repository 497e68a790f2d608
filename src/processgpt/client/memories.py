"""The ``/v1/memories`` calls of :class:`~processgpt.client.ProcessGPTClient`."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import httpx

from processgpt.domain.memory import MemoryChange, MemoryHit, MemoryItem


class _Requests(Protocol):
    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response: ...


def _scope(scope: dict[str, str | None] | None) -> dict[str, str | None]:
    return {k: v for k, v in (scope or {}).items() if v is not None}


class MemoryCalls:
    """Long-term memory of the key's tenant (the Agent Boss). Errors raise
    :class:`~processgpt.client.ApiError` (``memory_not_found``, ``invalid_state``…)."""

    async def teach(
        self: _Requests,
        content: str,
        *,
        kind: str = "guideline",
        scope: dict[str, str | None] | None = None,
        pinned: bool = False,
        proposed: bool = False,
        original: str | None = None,
        expires_at: str | None = None,
        reason: str | None = None,
    ) -> MemoryItem:
        """Teach an item (the existing one when the same content is in the scope already)."""
        body: dict[str, Any] = {"content": content, "kind": kind, "scope": _scope(scope)}
        body.update(pinned=pinned, proposed=proposed)
        for name, value in (("original", original), ("expires_at", expires_at), ("reason", reason)):
            if value is not None:
                body[name] = value
        response = await self._request("POST", "/v1/memories", json=body)
        return MemoryItem.model_validate(response.json())

    async def list_memories(self: _Requests, **filters: Any) -> list[MemoryItem]:
        """Items newest first; filters: status, agent, proc_def_id, activity_id, user_id,
        kind, pinned, source, before, limit."""
        params = {k: v for k, v in filters.items() if v is not None}
        response = await self._request("GET", "/v1/memories", params=params)
        return [MemoryItem.model_validate(i) for i in response.json()["items"]]

    async def list_proposals(self: _Requests, limit: int = 100) -> list[MemoryItem]:
        response = await self._request("GET", "/v1/memories/proposals", params={"limit": limit})
        return [MemoryItem.model_validate(i) for i in response.json()["items"]]

    async def get_memory(self: _Requests, memory_id: uuid.UUID | str) -> MemoryItem:
        response = await self._request("GET", f"/v1/memories/{memory_id}")
        return MemoryItem.model_validate(response.json())

    async def search_memories(
        self: _Requests,
        query: str,
        *,
        scope: dict[str, str | None] | None = None,
        limit: int = 5,
        mode: str = "hybrid",
    ) -> list[MemoryHit]:
        body = {"query": query, "scope": _scope(scope), "limit": limit, "mode": mode}
        response = await self._request("POST", "/v1/memories/search", json=body)
        return [MemoryHit.model_validate(h) for h in response.json()]

    async def update_memory(
        self: _Requests, memory_id: uuid.UUID | str, **changes: Any
    ) -> MemoryItem:
        response = await self._request("PATCH", f"/v1/memories/{memory_id}", json=changes)
        return MemoryItem.model_validate(response.json())

    async def supersede_memory(
        self: _Requests, memory_id: uuid.UUID | str, content: str, **fields: Any
    ) -> MemoryItem:
        body = {"content": content, **fields}
        response = await self._request("POST", f"/v1/memories/{memory_id}/supersede", json=body)
        return MemoryItem.model_validate(response.json())

    async def delete_memory(
        self: _Requests, memory_id: uuid.UUID | str, reason: str | None = None
    ) -> MemoryItem:
        params = {"reason": reason} if reason else None
        response = await self._request("DELETE", f"/v1/memories/{memory_id}", params=params)
        return MemoryItem.model_validate(response.json())

    async def delete_memory_scope(
        self: _Requests, scope: dict[str, str | None], reason: str | None = None
    ) -> int:
        """Delete every live item of exactly ``scope``; returns how many."""
        body = {"scope": _scope(scope), "reason": reason}
        response = await self._request("POST", "/v1/memories/delete", json=body)
        deleted: int = response.json()["deleted"]
        return deleted

    async def memory_history(self: _Requests, memory_id: uuid.UUID | str) -> list[MemoryChange]:
        response = await self._request("GET", f"/v1/memories/{memory_id}/history")
        return [MemoryChange.model_validate(c) for c in response.json()]

    async def decide_proposal(
        self: _Requests, memory_id: uuid.UUID | str, approve: bool, reason: str | None = None
    ) -> MemoryItem:
        verb = "approve" if approve else "reject"
        response = await self._request(
            "POST", f"/v1/memories/{memory_id}/{verb}", json={"reason": reason}
        )
        return MemoryItem.model_validate(response.json())

    async def set_memory_policy(
        self: _Requests, auto_activate: bool, agent: str | None = None
    ) -> dict[str, Any]:
        body = {"agent": agent, "auto_activate": auto_activate}
        response = await self._request("PUT", "/v1/memories/policies", json=body)
        result: dict[str, Any] = response.json()
        return result

    async def memories_used_by(self: _Requests, task_id: uuid.UUID | str) -> list[dict[str, Any]]:
        response = await self._request("GET", f"/v1/memories/used-by/{task_id}")
        result: list[dict[str, Any]] = response.json()
        return result

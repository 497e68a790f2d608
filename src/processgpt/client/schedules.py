"""The ``/v1/schedules`` calls of :class:`~processgpt.client.ProcessGPTClient`."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import httpx

from processgpt.protocols.schedules import SchedulePage, ScheduleView


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


class ScheduleCalls:
    """Schedules of the key's tenant. Errors raise :class:`~processgpt.client.ApiError`
    (``invalid_cron``, ``unknown_timezone``, ``name_taken``, ``schedule_not_found``…)."""

    async def create_schedule(
        self: _Requests,
        name: str,
        cron: str,
        *,
        timezone: str = "UTC",
        task: dict[str, Any] | None = None,
        process: dict[str, Any] | None = None,
        enabled: bool = True,
    ) -> ScheduleView:
        """A schedule that queues ``task`` (the fields of a task) or starts ``process``
        (``{"proc_def_id", "version"?, "variables"?, "roles"?}``) at each tick of ``cron``
        in ``timezone``."""
        body: dict[str, Any] = {"name": name, "cron": cron, "timezone": timezone}
        body["enabled"] = enabled
        if task is not None:
            body["task"] = task
        if process is not None:
            body["process"] = process
        response = await self._request("POST", "/v1/schedules", json=body)
        return ScheduleView.model_validate(response.json())

    async def list_schedules(self: _Requests, *, after: str = "", limit: int = 100) -> SchedulePage:
        """A page of the tenant's schedules, by name."""
        params = {"after": after, "limit": limit}
        response = await self._request("GET", "/v1/schedules", params=params)
        return SchedulePage.model_validate(response.json())

    async def get_schedule(self: _Requests, schedule_id: uuid.UUID | str) -> ScheduleView:
        response = await self._request("GET", f"/v1/schedules/{schedule_id}")
        return ScheduleView.model_validate(response.json())

    async def update_schedule(
        self: _Requests, schedule_id: uuid.UUID | str, **changes: Any
    ) -> ScheduleView:
        """Change ``enabled``, ``cron``, ``timezone`` or ``variables``."""
        response = await self._request("PATCH", f"/v1/schedules/{schedule_id}", json=changes)
        return ScheduleView.model_validate(response.json())

    async def delete_schedule(self: _Requests, schedule_id: uuid.UUID | str) -> None:
        await self._request("DELETE", f"/v1/schedules/{schedule_id}")

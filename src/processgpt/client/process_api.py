"""Processes over the HTTP API: definitions, instances (start, read, history, cancel,
migrate, messages, incidents), the worklist of people and completing their work items, and
the live process stream (:class:`ProcessApi`, part of
:class:`processgpt.client.ProcessGPTClient`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from processgpt.client.transport import ApiTransport, TaskId, drop_none
from processgpt.domain.process.state import InstanceStatus
from processgpt.domain.task import Task
from processgpt.protocols.process_views import (
    HistoryPage,
    IncidentView,
    ProcessDetail,
    ProcessInstancePage,
    ProcessInstanceView,
)
from processgpt.protocols.sse import SSEFrame, StreamPart, parse_part
from processgpt.protocols.views import (
    ProcessDefinitionView,
    ProcessView,
    PublishedDefinition,
    TaskPage,
)


class ProcessApi(ApiTransport):
    """The process routes (``/v1/process-definitions``, ``/v1/processes``, ``/v1/worklist``,
    ``/v1/tasks/{id}/complete``)."""

    async def start_process(
        self,
        agent_orch: str,
        query: str = "",
        *,
        name: str = "",
        proc_def_id: str | None = None,
        variables: dict[str, Any] | None = None,
        input: dict[str, Any] | None = None,
        priority: int = 0,
        max_attempts: int = 3,
        activity_id: str | None = None,
        activity_name: str | None = None,
    ) -> ProcessView:
        """Start a process instance of the one-task form: an instance with this first task,
        which no engine advances (see :meth:`start_instance` for a published definition)."""
        body = {
            "name": name,
            "proc_def_id": proc_def_id,
            "variables": variables or {},
            "task": drop_none(
                {
                    "agent_orch": agent_orch,
                    "query": query,
                    "input": input or {},
                    "priority": priority,
                    "max_attempts": max_attempts,
                    "activity_id": activity_id,
                    "activity_name": activity_name,
                }
            ),
        }
        response = await self._request("POST", "/v1/processes", json=drop_none(body))
        return ProcessView.model_validate(response.json())

    async def publish_process_definition(
        self,
        definition_id: str,
        *,
        definition: dict[str, Any] | None = None,
        bpmn: str | None = None,
        name: str | None = None,
        forms: dict[str, Any] | None = None,
    ) -> PublishedDefinition:
        """Publish the next version of a process definition: ProcessGPT JSON
        (``definition``) or BPMN XML (``bpmn``). ``created`` is False when the content equals
        the latest version (that version is returned). An invalid definition raises
        :class:`ApiError` ``definition_invalid`` with every problem in ``details``."""
        body = drop_none(
            {"id": definition_id, "name": name, "definition": definition, "bpmn": bpmn}
        )
        if forms:
            body["forms"] = forms
        response = await self._request("POST", "/v1/process-definitions", json=body)
        return PublishedDefinition.model_validate(response.json())

    async def get_process_definition(self, definition_id: str) -> ProcessDefinitionView:
        """A published definition with every version."""
        response = await self._request("GET", f"/v1/process-definitions/{definition_id}")
        return ProcessDefinitionView.model_validate(response.json())

    # -- instances ------------------------------------------------------------------------

    async def start_instance(
        self,
        proc_def_id: str,
        *,
        version: int | None = None,
        variables: dict[str, Any] | None = None,
        roles: dict[str, str] | None = None,
        name: str = "",
        idempotency_key: str | None = None,
    ) -> ProcessDetail:
        """Start an instance of a published definition (its latest version, or
        ``version``) with ``variables`` and role bindings ``roles`` (role → user). The same
        ``idempotency_key`` again answers the instance it started."""
        body = drop_none(
            {
                "proc_def_id": proc_def_id,
                "version": version,
                "variables": variables or {},
                "roles": roles or {},
                "name": name,
                "idempotency_key": idempotency_key,
            }
        )
        response = await self._request("POST", "/v1/processes", json=body)
        return ProcessDetail.model_validate(response.json())

    async def get_process(self, proc_inst_id: TaskId) -> ProcessDetail:
        """The instance: status, where it waits, variables, incidents, open and all tasks
        (``process`` and ``tasks`` as the one-task form answers them)."""
        response = await self._request("GET", f"/v1/processes/{proc_inst_id}")
        return ProcessDetail.model_validate(response.json())

    async def list_processes_page(
        self,
        *,
        proc_def_id: str | None = None,
        status: InstanceStatus | str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ProcessInstancePage:
        """One page of instances, newest first; pass ``next_cursor`` back for the next."""
        params = drop_none(
            {
                "proc_def_id": proc_def_id,
                "status": str(status) if status is not None else None,
                "cursor": cursor,
                "limit": limit,
            }
        )
        response = await self._request("GET", "/v1/processes", params=params)
        return ProcessInstancePage.model_validate(response.json())

    async def list_processes(
        self,
        *,
        proc_def_id: str | None = None,
        status: InstanceStatus | str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[ProcessInstanceView]:
        """Every matching instance, newest first, fetching pages as it goes; at most
        ``limit``."""
        cursor: str | None = None
        seen = 0
        while True:
            size = page_size if limit is None else max(1, min(page_size, limit - seen))
            page = await self.list_processes_page(
                proc_def_id=proc_def_id, status=status, cursor=cursor, limit=size
            )
            for item in page.items:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def history(
        self, proc_inst_id: TaskId, after: int = 0, *, limit: int = 500
    ) -> HistoryPage:
        """A page of the instance's history after line ``after`` (pass ``next_after``
        back)."""
        response = await self._request(
            "GET",
            f"/v1/processes/{proc_inst_id}/history",
            params={"after": after, "limit": limit},
        )
        return HistoryPage.model_validate(response.json())

    async def cancel_process(self, proc_inst_id: TaskId, reason: str = "") -> ProcessDetail:
        """Cancel the instance with its open tasks and timers."""
        response = await self._request(
            "POST", f"/v1/processes/{proc_inst_id}/cancel", json={"reason": reason}
        )
        return ProcessDetail.model_validate(response.json())

    async def migrate_process(
        self, proc_inst_id: TaskId, to_version: int, mapping: dict[str, str] | None = None
    ) -> ProcessDetail:
        """Move the instance to ``to_version`` of its definition (``mapping``: old node id →
        new)."""
        response = await self._request(
            "POST",
            f"/v1/processes/{proc_inst_id}/migrate",
            json={"to_version": to_version, "mapping": mapping or {}},
        )
        return ProcessDetail.model_validate(response.json())

    async def send_message(
        self, proc_inst_id: TaskId, name: str, payload: dict[str, Any] | None = None
    ) -> ProcessDetail:
        """Deliver message ``name`` (its payload merged into the variables)."""
        response = await self._request(
            "POST", f"/v1/processes/{proc_inst_id}/messages/{name}", json=payload or {}
        )
        return ProcessDetail.model_validate(response.json())

    async def incidents(self, proc_inst_id: TaskId) -> list[IncidentView]:
        """The instance's open incidents."""
        response = await self._request("GET", f"/v1/processes/{proc_inst_id}/incidents")
        return [IncidentView.model_validate(item) for item in response.json()]

    async def resolve_incident(
        self,
        proc_inst_id: TaskId,
        incident_id: str,
        *,
        variables: dict[str, Any] | None = None,
    ) -> ProcessDetail:
        """Retry where the incident stopped, after merging ``variables``."""
        response = await self._request(
            "POST",
            f"/v1/processes/{proc_inst_id}/incidents/{incident_id}/resolve",
            json={"variables": variables or {}},
        )
        return ProcessDetail.model_validate(response.json())

    # -- people's work --------------------------------------------------------------------

    async def worklist_page(
        self,
        *,
        user: str | None = None,
        role: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> TaskPage:
        """One page of open human work items (TODO), newest first."""
        params = drop_none({"user": user, "role": role, "cursor": cursor, "limit": limit})
        response = await self._request("GET", "/v1/worklist", params=params)
        return TaskPage.model_validate(response.json())

    async def worklist(
        self, *, user: str | None = None, role: str | None = None, limit: int | None = None
    ) -> AsyncIterator[Task]:
        """Every open human work item of ``user`` / ``role`` (or all), newest first."""
        cursor: str | None = None
        seen = 0
        while True:
            size = 100 if limit is None else max(1, min(100, limit - seen))
            page = await self.worklist_page(user=user, role=role, cursor=cursor, limit=size)
            for item in page.items:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def complete_task(
        self, task_id: TaskId, output: dict[str, Any], *, idempotency_key: str | None = None
    ) -> Task:
        """Complete a person's work item with ``output`` (the form's values); its process
        advances. 409 ``invalid_state`` when it is not open (unless completed before with
        the same ``idempotency_key``), 422 when ``output`` does not fit its form."""
        body = drop_none({"output": output, "idempotency_key": idempotency_key})
        response = await self._request("POST", f"/v1/tasks/{task_id}/complete", json=body)
        return Task.model_validate(response.json())

    # -- the live stream ------------------------------------------------------------------

    async def stream_process(
        self, proc_inst_id: TaskId, *, cursor: str | None = None
    ) -> AsyncIterator[StreamPart]:
        """A process instance live: its history as ``data-process_event`` parts and every
        task's as ``data-task_event`` / ``data-task_status`` parts (see
        ``processgpt.api.process_stream``), until the instance and its tasks have ended.

        Reconnects like :meth:`stream`: events and history lines are never lost or repeated;
        after a reconnect the server sends the current ``data-process_status`` and each
        task's ``data-task_status`` again (snapshots with the same part ``id``, meant to
        replace the earlier ones)."""
        state = _ProcessCursor(cursor)
        path = f"/v1/processes/{proc_inst_id}/stream"
        async for part in self._resumable(path, state):
            yield part


@dataclass
class _ProcessCursor:
    """Resume bookkeeping of a process stream: every ``data-task_event`` frame carries the
    whole cursor as its SSE id; the only frame repeated on a new connection that is not a
    snapshot is ``start``."""

    last_id: str | None = None
    _started: bool = False
    _skip_start: bool = False

    def connect(self) -> str | None:
        self._skip_start = self._started
        return self.last_id

    def accept(self, frame: SSEFrame) -> StreamPart | None:
        if frame.id is not None:
            self.last_id = frame.id
        if frame.data is None:
            return None
        part = parse_part(frame.data, frame.id)
        if part.type == "start":
            if self._skip_start:
                self._skip_start = False
                return None
            self._started = True
        return part

"""Tasks over the HTTP API: create, list, read and change them, their event log, their live
stream, and the orchestrators that run them (:class:`TaskApi`, part of
:class:`processgpt.client.ProcessGPTClient`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from processgpt.client.transport import ApiTransport, TaskId, drop_none
from processgpt.domain.events import Event, EventType
from processgpt.domain.task import Task, TaskStatus
from processgpt.protocols.sse import STATUS_PART, DataPart, ResumeCursor, StreamPart
from processgpt.protocols.views import EventPage, OrchestratorView, TaskPage

SETTLED = frozenset(
    {TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.INPUT_REQUIRED}
)
"""Where :meth:`ProcessGPTClient.follow` stops: the task ended or waits for a person."""

_EVENT_PAGE = 500


def _says_waiting(part: StreamPart) -> bool:
    """Whether ``part`` is the stream's snapshot of a task waiting for input (the status
    change itself is no event of the log)."""
    return (
        isinstance(part, DataPart)
        and part.type == STATUS_PART
        and isinstance(part.data, dict)
        and part.data.get("status") == TaskStatus.INPUT_REQUIRED
    )


class TaskApi(ApiTransport):
    """The task routes (``/v1/tasks``, ``/v1/orchestrators``)."""

    async def create_task(
        self,
        agent_orch: str,
        query: str = "",
        *,
        input: dict[str, Any] | None = None,
        priority: int = 0,
        max_attempts: int = 3,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
        proc_inst_id: TaskId | None = None,
        activity_id: str | None = None,
        activity_name: str | None = None,
        user_id: str | None = None,
        tool: str | None = None,
        description: str | None = None,
    ) -> Task:
        """Submit a task. With ``idempotency_key``, a repeat returns the task created first."""
        body = drop_none(
            {
                "agent_orch": agent_orch,
                "query": query,
                "input": input or {},
                "priority": priority,
                "max_attempts": max_attempts,
                "run_at": run_at.isoformat() if run_at is not None else None,
                "proc_inst_id": str(proc_inst_id) if proc_inst_id is not None else None,
                "activity_id": activity_id,
                "activity_name": activity_name,
                "user_id": user_id,
                "tool": tool,
                "description": description,
            }
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._request("POST", "/v1/tasks", json=body, headers=headers)
        return Task.model_validate(response.json())

    async def get_task(self, task_id: TaskId) -> Task:
        response = await self._request("GET", f"/v1/tasks/{task_id}")
        return Task.model_validate(response.json())

    async def list_tasks_page(
        self,
        *,
        status: TaskStatus | str | None = None,
        agent_orch: str | None = None,
        proc_inst_id: TaskId | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> TaskPage:
        """One page of tasks, newest first; pass ``next_cursor`` back for the next one."""
        params = drop_none(
            {
                "status": str(status) if status is not None else None,
                "agent_orch": agent_orch,
                "proc_inst_id": str(proc_inst_id) if proc_inst_id is not None else None,
                "cursor": cursor,
                "limit": limit,
            }
        )
        response = await self._request("GET", "/v1/tasks", params=params)
        return TaskPage.model_validate(response.json())

    async def list_tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        agent_orch: str | None = None,
        proc_inst_id: TaskId | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Task]:
        """Every matching task, newest first, fetching pages as it goes; at most ``limit``."""
        cursor: str | None = None
        seen = 0
        while True:
            size = page_size if limit is None else max(1, min(page_size, limit - seen))
            page = await self.list_tasks_page(
                status=status,
                agent_orch=agent_orch,
                proc_inst_id=proc_inst_id,
                cursor=cursor,
                limit=size,
            )
            for task in page.items:
                yield task
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def cancel_task(self, task_id: TaskId, reason: str = "cancelled") -> Task:
        response = await self._request(
            "POST", f"/v1/tasks/{task_id}/cancel", json={"reason": reason}
        )
        return Task.model_validate(response.json())

    async def requeue_task(self, task_id: TaskId) -> Task:
        response = await self._request("POST", f"/v1/tasks/{task_id}/requeue")
        return Task.model_validate(response.json())

    async def answer(self, task_id: TaskId, answer: Any) -> Task:
        """Answer a task waiting for a person (INPUT_REQUIRED); it is queued again."""
        response = await self._request(
            "POST", f"/v1/tasks/{task_id}/input", json={"answer": answer}
        )
        return Task.model_validate(response.json())

    async def feedback(self, task_id: TaskId, feedback: Any) -> Task:
        response = await self._request(
            "POST", f"/v1/tasks/{task_id}/feedback", json={"feedback": feedback}
        )
        return Task.model_validate(response.json())

    async def events(self, task_id: TaskId, after: int = 0, *, limit: int = 500) -> EventPage:
        """A page of the task's event log after ``after`` (pass ``next_after`` back)."""
        response = await self._request(
            "GET", f"/v1/tasks/{task_id}/events", params={"after": after, "limit": limit}
        )
        return EventPage.model_validate(response.json())

    async def follow(self, task_id: TaskId, *, after: int = 0) -> AsyncIterator[Event]:
        """The task's events after seq ``after``, in order, without gaps or repeats: first
        those already written, then live, until the task has ended (DONE, FAILED, CANCELLED)
        or waits for a person (INPUT_REQUIRED) and every event up to then was yielded.

        The live part listens to :meth:`stream` only to learn that new events exist and
        reads them from the event log (:meth:`events`), so every event comes as the log
        holds it, including those the UI message stream shows as no part of their own.
        Errors as :meth:`stream` (``ApiError``, ``StreamBroken``, ``httpx`` transport
        errors)."""
        last = after
        task = await self.get_task(task_id)
        async for event in self._events_after(task_id, last):
            last = event.seq
            yield event
        if task.status in SETTLED and last >= task.last_seq:
            return
        async for part in self.stream(task_id, after=last):
            waiting = _says_waiting(part)
            if not waiting and (part.seq is None or part.seq <= last):
                continue
            asked = waiting
            async for event in self._events_after(task_id, last):
                last = event.seq
                asked = asked or event.event_type == EventType.HUMAN_ASKED
                yield event
            if asked:  # the run may have ended with its question: the task then waits
                task = await self.get_task(task_id)
                if task.status is TaskStatus.INPUT_REQUIRED and last >= task.last_seq:
                    return
        # The stream ended ([DONE]): the task has ended; its last events may carry no part.
        async for event in self._events_after(task_id, last):
            yield event

    async def _events_after(self, task_id: TaskId, after: int) -> AsyncIterator[Event]:
        while True:
            page = await self.events(task_id, after, limit=_EVENT_PAGE)
            for event in page.items:
                yield event
            if len(page.items) < _EVENT_PAGE:
                return
            after = page.next_after

    async def orchestrators(self) -> list[OrchestratorView]:
        """Every orchestrator a worker has registered, with ``online``: whether a worker
        serving it was seen recently (a task of an agent that is not online waits)."""
        response = await self._request("GET", "/v1/orchestrators")
        return [OrchestratorView.model_validate(item) for item in response.json()]

    async def stream(self, task_id: TaskId, *, after: int = 0) -> AsyncIterator[StreamPart]:
        """The task's UI message stream parts after event ``after``, live until the task ends.

        Each part carries the SSE id of its frame as ``event_id`` / ``seq`` when it has one
        (the last part of each event). If the connection drops, the stream reconnects with
        ``Last-Event-ID`` and continues exactly where it was: no part is lost or repeated.
        Raises :class:`ApiError` for an error answer (404, 401, …) and :class:`StreamBroken`
        when :attr:`reconnect` gives up.
        """
        cursor = ResumeCursor(last_id=after)
        async for part in self._resumable(f"/v1/tasks/{task_id}/stream", cursor):
            yield part

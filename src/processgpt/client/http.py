"""An async Python client of the Execution API (HTTP + SSE), on httpx.

```python
async with ProcessGPTClient("http://127.0.0.1:8000", api_key) as pg:
    task = await pg.create_task("demo", "hello", input={"steps": 2})
    async for part in pg.stream(task.id):          # typed parts; reconnects by itself
        print(part.type, part.seq)
    async for event in pg.follow(task.id):         # or the event log itself, live
        print(event.seq, event.event_type, event.data)
```

Every API error raises :class:`ApiError` with the HTTP status and the stable error ``code``
(``task_not_found``, ``invalid_state``, ``too_many_pending`` with ``retry_after``, …).

Streams survive dropped connections: :meth:`ProcessGPTClient.stream` reconnects with
``Last-Event-ID`` and backoff (:class:`ReconnectPolicy`), and drops exactly the frames the
reader already has, so across any number of drops the parts delivered are the parts of one
uninterrupted stream (see :class:`processgpt.protocols.sse.ResumeCursor`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

from processgpt.client.schedules import ScheduleCalls
from processgpt.domain.events import Event, EventType
from processgpt.domain.task import Task, TaskStatus
from processgpt.protocols.sse import (
    STATUS_PART,
    DataPart,
    ResumeCursor,
    SSEDecoder,
    SSEFrame,
    StreamPart,
    parse_part,
)
from processgpt.protocols.views import (
    EventPage,
    OrchestratorView,
    ProcessView,
    PublishedDefinition,
    TaskPage,
)

log = logging.getLogger(__name__)

TaskId = uuid.UUID | str


class ApiError(Exception):
    """The API answered with an error. ``code`` is the stable error code of the body
    (``{"error": {"code", "message", "details"?}}``); ``retry_after`` is set for 429;
    ``details`` holds the structured problems when the error has them (e.g.
    ``definition_invalid``: ``[{"id", "problem"}]``)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.details = details


class StreamBroken(ApiError):
    """A stream could not be resumed within the reconnect policy's attempts."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "stream_broken", message)


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a stream reconnects after a dropped connection: up to ``max_retries`` attempts in a
    row without receiving anything (the count restarts whenever a frame arrives), waiting
    ``base_delay·2^(n-1)`` seconds (capped at ``max_delay``, with jitter) before attempt n.
    ``read_timeout`` is how long a connection may stay silent (the server sends heartbeats
    every 15 s by default) before it counts as dropped."""

    max_retries: int = 5
    base_delay: float = 0.1
    max_delay: float = 5.0
    read_timeout: float = 60.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempt - 1))
        return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter


_RETRYABLE_STATUS = frozenset({502, 503, 504})

SETTLED = frozenset(
    {TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.INPUT_REQUIRED}
)
"""Where :meth:`ProcessGPTClient.follow` stops: the task ended or waits for a person."""

_EVENT_PAGE = 500


def _error(response: httpx.Response) -> ApiError:
    """The error of a read response (its body is ``{"error": {"code", "message"}}``)."""
    code, message = "http_error", response.reason_phrase
    details: list[dict[str, Any]] | None = None
    try:
        payload = response.json()
        err = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code", code))
            message = str(err.get("message", message))
            found = err.get("details")
            if isinstance(found, list):
                details = [d for d in found if isinstance(d, dict)]
    except ValueError:
        pass
    retry_after: float | None = None
    header = response.headers.get("retry-after")
    if header is not None:
        try:
            retry_after = float(header)
        except ValueError:
            retry_after = None
    return ApiError(response.status_code, code, message, retry_after=retry_after, details=details)


def _says_waiting(part: StreamPart) -> bool:
    """Whether ``part`` is the stream's snapshot of a task waiting for input (the status
    change itself is no event of the log)."""
    return (
        isinstance(part, DataPart)
        and part.type == STATUS_PART
        and isinstance(part.data, dict)
        and part.data.get("status") == TaskStatus.INPUT_REQUIRED
    )


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class ProcessGPTClient(ScheduleCalls):
    """A client bound to one API and key. Use as an async context manager (or call
    :meth:`aclose`). ``transport`` replaces httpx's (tests, proxies). ``timeout``: seconds
    per request, or an ``httpx.Timeout`` (e.g. a short ``connect`` so that an API that is not
    running is an error at once: ``httpx.ConnectError``, or ``ConnectTimeout``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 30.0,
        reconnect: ReconnectPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.reconnect = reconnect or ReconnectPolicy()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", **(headers or {})},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        response = await self._http.request(method, path, json=json, params=params, headers=headers)
        if response.status_code >= 400:
            raise _error(response)
        return response

    # -- tasks ----------------------------------------------------------------------------------

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
        body = _drop_none(
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
        params = _drop_none(
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

    # -- orchestrators --------------------------------------------------------------------------

    async def orchestrators(self) -> list[OrchestratorView]:
        """Every orchestrator a worker has registered, with ``online``: whether a worker
        serving it was seen recently (a task of an agent that is not online waits)."""
        response = await self._request("GET", "/v1/orchestrators")
        return [OrchestratorView.model_validate(item) for item in response.json()]

    # -- processes ------------------------------------------------------------------------------

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
        """Start a process instance with its first task."""
        body = {
            "name": name,
            "proc_def_id": proc_def_id,
            "variables": variables or {},
            "task": _drop_none(
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
        response = await self._request("POST", "/v1/processes", json=_drop_none(body))
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
        body = _drop_none(
            {"id": definition_id, "name": name, "definition": definition, "bpmn": bpmn}
        )
        if forms:
            body["forms"] = forms
        response = await self._request("POST", "/v1/process-definitions", json=body)
        return PublishedDefinition.model_validate(response.json())

    async def get_process(self, proc_inst_id: TaskId) -> ProcessView:
        response = await self._request("GET", f"/v1/processes/{proc_inst_id}")
        return ProcessView.model_validate(response.json())

    # -- streams --------------------------------------------------------------------------------

    async def stream(self, task_id: TaskId, *, after: int = 0) -> AsyncIterator[StreamPart]:
        """The task's UI message stream parts after event ``after``, live until the task ends.

        Each part carries the SSE id of its frame as ``event_id`` / ``seq`` when it has one
        (the last part of each event). If the connection drops, the stream reconnects with
        ``Last-Event-ID`` and continues exactly where it was: no part is lost or repeated.
        Raises :class:`ApiError` for an error answer (404, 401, …) and :class:`StreamBroken`
        when :attr:`reconnect` gives up.
        """
        cursor = ResumeCursor(last_id=after)
        async for part in self._resumable(f"/v1/tasks/{task_id}/stream", cursor.connect, cursor):
            yield part

    async def stream_process(
        self, proc_inst_id: TaskId, *, cursor: str | None = None
    ) -> AsyncIterator[StreamPart]:
        """Every task of a process instance as ``data-task_event`` / ``data-task_status``
        parts (see ``processgpt.api.process_stream``), until all its tasks have ended.

        Reconnects like :meth:`stream`: events are never lost or repeated; after a reconnect
        the server sends each task's current ``data-task_status`` again (a snapshot with the
        same part ``id``, meant to replace the earlier one)."""
        state = _ProcessCursor(cursor)
        path = f"/v1/processes/{proc_inst_id}/stream"
        async for part in self._resumable(path, state.connect, state):
            yield part

    async def _resumable(
        self,
        path: str,
        connect: Callable[[], str | None],
        cursor: ResumeCursor | _ProcessCursor,
    ) -> AsyncIterator[StreamPart]:
        failures = 0
        timeout = httpx.Timeout(self._http.timeout.connect, read=self.reconnect.read_timeout)
        while True:
            last_event_id = connect()
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            progressed = False
            try:
                async with self._http.stream(
                    "GET", path, headers=headers, timeout=timeout
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        if response.status_code not in _RETRYABLE_STATUS:
                            raise _error(response)
                        raise httpx.RemoteProtocolError(f"status {response.status_code}")
                    decoder = SSEDecoder()
                    async for chunk in response.aiter_bytes():
                        for frame in decoder.feed(chunk):
                            progressed = True
                            if frame.done:
                                return
                            part = cursor.accept(frame)
                            if part is not None:
                                yield part
                        if decoder.comments:
                            progressed = True  # heartbeats: the connection is alive
                raise httpx.RemoteProtocolError("the stream ended before [DONE]")
            except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                failures = 1 if progressed else failures + 1
                if failures > self.reconnect.max_retries:
                    raise StreamBroken(
                        f"{path}: gave up after {failures - 1} reconnects ({exc!r})"
                    ) from exc
                delay = self.reconnect.delay(failures)
                log.info(
                    "stream dropped, reconnecting path=%s last_event_id=%s attempt=%d error=%s",
                    path,
                    last_event_id,
                    failures,
                    type(exc).__name__,
                )
                await asyncio.sleep(delay)


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

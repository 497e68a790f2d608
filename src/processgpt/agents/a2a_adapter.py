"""The A2A side of a task: the request context an ``AgentExecutor`` reads and the event queue
it writes, both backed by the worker's durable log (:mod:`processgpt.agents.task_runner` runs
the executor with them).

Event mapping (the ProcessGPT contract, seed 000):

* ``TaskStatusUpdateEvent`` → one ``events`` row: ``event_type`` from metadata ``event_type``,
  else from the state (submitted→task_started, working→task_working,
  completed→task_completed, failed/rejected→error, input-required/auth-required→human_asked,
  canceled→task_cancelled); ``crew_type``, ``job_id`` (default: the task id) and ``status``
  from metadata; ``data`` = the message text parsed as JSON when it is JSON, else the text.
* ``TaskArtifactUpdateEvent`` → the task's result: ``last_chunk`` marks it final, earlier
  chunks update the draft.
* ``Message`` → a ``task_working`` event; a run that produced only messages completes with
  the last one as its result (A2A's "immediate response").
* ``Task`` → nothing (A2A executors enqueue it before their first update).

Both a2a-sdk 1.x protobuf types and 0.3-style pydantic types (``a2a.compat.v0_3.types``) are
accepted. ``enqueue_event`` queues the event before it returns, so executors that forget to
await it lose nothing; awaiting it applies backpressure.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from a2a.compat.v0_3 import conversions as v03
from a2a.compat.v0_3 import types as t03
from a2a.server.agent_execution import RequestContext
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.types import (
    Message,
    Part,
    Role,
    SendMessageRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatusUpdateEvent,
)
from google.protobuf import json_format

from processgpt.domain.documents import Document
from processgpt.domain.errors import (
    InvalidConfiguration,
    InvalidInput,
)
from processgpt.domain.events import (
    EventRecord,
    EventType,
    encode_event_data,
    encode_json,
    parse_text,
)
from processgpt.domain.files import FileInfo
from processgpt.files.task_files import TaskFiles
from processgpt.memory.bound import TaskMemory
from processgpt.runtime.run import READY, Outcome, TaskRun

STATE_EVENT_TYPES: dict[int, EventType] = {
    TaskState.TASK_STATE_SUBMITTED: EventType.TASK_STARTED,
    TaskState.TASK_STATE_WORKING: EventType.TASK_WORKING,
    TaskState.TASK_STATE_COMPLETED: EventType.TASK_COMPLETED,
    TaskState.TASK_STATE_FAILED: EventType.ERROR,
    TaskState.TASK_STATE_REJECTED: EventType.ERROR,
    TaskState.TASK_STATE_INPUT_REQUIRED: EventType.HUMAN_ASKED,
    TaskState.TASK_STATE_AUTH_REQUIRED: EventType.HUMAN_ASKED,
    TaskState.TASK_STATE_CANCELED: EventType.TASK_CANCELLED,
}

_FINAL_STATES: dict[int, Outcome] = {
    TaskState.TASK_STATE_COMPLETED: Outcome.COMPLETED,
    TaskState.TASK_STATE_FAILED: Outcome.FAILED,
    TaskState.TASK_STATE_REJECTED: Outcome.FAILED,
    TaskState.TASK_STATE_CANCELED: Outcome.CANCELLED,
    TaskState.TASK_STATE_INPUT_REQUIRED: Outcome.INPUT_REQUIRED,
    TaskState.TASK_STATE_AUTH_REQUIRED: Outcome.INPUT_REQUIRED,
}


def jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    """The task row with ids and timestamps as strings, as executors written for the
    Supabase-based SDK expect."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, uuid.UUID) or hasattr(value, "isoformat"):
            out[key] = str(value) if isinstance(value, uuid.UUID) else value.isoformat()
        else:
            out[key] = value
    return out


class ProcessGPTRequestContext(RequestContext):
    """The A2A request context of a task, plus ProcessGPT's ``get_context_data()``:
    ``{"row": <todolist row>, "extras": {form_fields, users, agents, tenant_mcp, sources,
    human_response, …}}``. What an executor does not ask for is never built."""

    def __init__(
        self,
        run: TaskRun,
        mcp_view: Callable[[Any, str], dict[str, Any]] | None = None,
        files: TaskFiles | None = None,
    ) -> None:
        task_id = run.id_str
        proc_inst_id = run.claimed.proc_inst_id
        # The call context (a pydantic model) is built when first asked for.
        super().__init__(
            None,  # type: ignore[arg-type]
            None,
            task_id,
            str(proc_inst_id) if proc_inst_id else task_id,
        )
        self._run = run
        self._row: dict[str, Any] | None = None
        self._extras: dict[str, Any] | None = None
        self._mcp_view = mcp_view
        self._files = files
        self._query: str = run.claimed.query or ""

    @property
    def row(self) -> dict[str, Any]:
        """The task's row, ids and timestamps as strings."""
        if self._row is None:
            self._row = jsonable_row(self._run.row)
        return self._row

    @property
    def extras(self) -> dict[str, Any]:
        """The task's ``extras``. ``tenant_mcp`` holds only what the policy lets executors
        use (:mod:`processgpt.tools.executor_view`; ``{}`` when the tenant has nothing)."""
        if self._extras is None:
            extras = self._run.context
            stored = extras.get("tenant_mcp")
            view = self._mcp_view
            shown = view(stored, self.tenant) if stored and view is not None else {}
            self._extras = {**extras, "tenant_mcp": shown}
        return self._extras

    @property
    def files(self) -> TaskFiles:
        """The task's files: ``await context.files.list()`` (metadata of the files it was
        given), ``await context.files.read(file_id)`` (their bytes). Raises
        :class:`InvalidConfiguration` in a worker built without file storage."""
        return _require_files(self._files)

    @property
    def memory(self) -> TaskMemory | None:
        """The task's memory (bound to its tenant and scope by the worker), if any."""
        return self._run.memory

    @property
    def tenant_mcp_config(self) -> Any:
        """The tenant's MCP configuration as stored (sealed secrets, catalog references,
        entries a worker refuses), for executors that plan servers through
        :class:`~processgpt.tools.mcp.McpConnections`, which applies the policy. Never build
        MCP clients from it directly."""
        return self._run.context.get("tenant_mcp")

    @property
    def call_context(self) -> ServerCallContext:
        call: ServerCallContext | None = self._call_context
        if call is None:
            call = self._call_context = ServerCallContext(tenant=self._run.claimed.tenant_id)
        return call

    @property
    def tenant(self) -> str:
        return self._run.claimed.tenant_id

    @property
    def requested_extensions(self) -> set[str]:
        return self.call_context.requested_extensions

    def get_user_input(self, delimiter: str = "\n") -> str:
        return self._query

    @property
    def message(self) -> Message:
        """The task's query as an A2A user message (built when first asked for)."""
        if self._params is None:
            message = Message(
                message_id=f"{self.task_id}:{self._run.attempt}",
                role=Role.ROLE_USER,
                parts=[Part(text=self._query)],
                task_id=self.task_id,
                context_id=self.context_id,
            )
            self._params = SendMessageRequest(message=message)
        return self._params.message

    def get_context_data(self) -> dict[str, Any]:
        return {"row": self.row, "extras": self.extras}

    @property
    def metadata(self) -> dict[str, Any]:
        return {**self.extras, "row": self.row}


class RunRecord:
    """What the events of one run said about how it ended."""

    def __init__(self) -> None:
        self.outcome: Outcome | None = None
        self.message: str | None = None
        self.output: Any = None
        self.has_output = False
        self.last_message: Any = None
        self.draft_text: list[str] = []


class ProcessGPTEventQueue(EventQueue):
    """The event queue handed to an executor: every event goes to the task's durable log."""

    def __init__(self, run: TaskRun, files: TaskFiles | None = None) -> None:
        self._run = run
        self._files = files
        self._result = RunRecord()
        self._lock = threading.Lock()

    @property
    def result(self) -> RunRecord:
        return self._result

    @property
    def has_files(self) -> bool:
        """Whether :meth:`send_file` and :meth:`save_document` can work (the worker has file
        storage)."""
        return self._files is not None

    def enqueue_event(self, event: Any) -> Awaitable[None]:  # type: ignore[override]
        """Queue ``event`` durably (the write is batched). Awaiting the return value is
        optional; it waits while the writer is saturated."""
        kind = type(event)
        core = event if kind in _CORE_TYPES else _to_core(event)
        # The lock guards the run's result only; the write itself happens outside it, because
        # from an executor thread it waits for the worker's loop, which may need the lock.
        with self._lock:
            if isinstance(core, TaskStatusUpdateEvent):
                fields = self._status(core)
            elif isinstance(core, TaskArtifactUpdateEvent):
                self._artifact(core)
                return READY
            elif isinstance(core, Message):
                record, encoded = self._message(core)
                return self._run.emit(record, encoded)
            else:
                return READY
        return self._run.emit_fields(*fields)

    async def close(self) -> None:
        """Nothing to release: the worker's writer owns the durable part."""

    # -- helpers for streaming agents (each returns an optional awaitable, like
    #    enqueue_event; the events land in the same log and every stream shows them) --

    def text(self, text: str) -> Awaitable[None]:
        """Stream a piece of the answer. Consecutive pieces are stored as one event per
        few tens of milliseconds, not one row per token."""
        return self._run.emit_text(text)

    def reasoning(self, text: str) -> Awaitable[None]:
        """Stream a piece of the model's reasoning (coalesced like :meth:`text`)."""
        return self._run.emit_text(text, event_type="reasoning_delta")

    def tool_call(self, tool_name: str, arguments: Any, *, tool_call_id: str | None = None) -> str:
        """Record that a tool is called (``tool_usage_started``); returns the call id."""
        call_id = tool_call_id or f"call_{uuid.uuid4().hex[:12]}"
        self._emit(
            EventType.TOOL_USAGE_STARTED,
            {"tool_call_id": call_id, "tool_name": tool_name, "input": arguments},
        )
        return call_id

    def tool_result(
        self, tool_call_id: str, tool_name: str, output: Any = None, *, error: str | None = None
    ) -> Awaitable[None]:
        """Record a tool's result or error (``tool_usage_finished``)."""
        data: dict[str, Any] = {"tool_call_id": tool_call_id, "tool_name": tool_name}
        if error is not None:
            data["error"] = error
        else:
            data["output"] = output
        return self._emit(EventType.TOOL_USAGE_FINISHED, data)

    def progress(self, payload: dict[str, Any], *, name: str = "progress") -> Awaitable[None]:
        """A custom progress update (streams show it as ``data-<name>``)."""
        return self._emit(name, payload)

    def file(
        self, url: str, media_type: str = "application/octet-stream", *, path: str | None = None
    ) -> Awaitable[None]:
        """Send a file to the user (a URL, and optionally its workspace path)."""
        return self._emit("file", {"url": url, "media_type": media_type, "path": path})

    async def send_file(self, name: str, data: bytes, media_type: str | None = None) -> FileInfo:
        """Send the user a file the agent made (seed 002's SEND_FILE): its bytes are stored
        as the task's file (same size limit and content-type checks as an upload; the type
        is decided from ``media_type``, the name and the bytes), then a ``file`` event
        ``{file_id, name, media_type, size}`` goes on the task's log; streams show it with a
        signed download link (the AI SDK's ``file`` part, the chat's ``AGENT_EVENT_SEND_FILE``).
        Returns the stored file."""
        info = await _require_files(self._files).send(name, data, media_type)
        await self._emit(
            "file",
            {
                "file_id": str(info.id),
                "name": info.name,
                "media_type": info.content_type,
                "size": info.size,
            },
        )
        return info

    async def save_document(
        self,
        title: str,
        content: str = "",
        *,
        file_id: uuid.UUID | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Document:
        """Store a document as the task's result (seed 001's ``documents``: listed by task and
        process instance at ``/v1/documents``): a title, text ``content`` and optionally a file
        (e.g. :meth:`send_file`'s). Written at once, fenced by this attempt's claim
        (:class:`LeaseLost` if the task was taken away: nothing is stored); then a
        ``document`` event ``{document_id, title, file_id}`` goes on the task's log. A retried
        attempt stores its own documents: those of a failed attempt stay, marked with it."""
        files = _require_files(self._files)
        meta = {**(metadata or {}), "attempt": self._run.attempt}
        document = await files.save_document(title, content, file_id=file_id, metadata=meta)
        await self._emit(
            "document",
            {
                "document_id": str(document.id),
                "title": document.title,
                "file_id": str(document.file_id) if document.file_id else None,
            },
        )
        return document

    def complete(self, result: Any) -> Awaitable[None]:
        """Set the task's final result and end it as completed, in one call: the same as a
        ``TaskArtifactUpdateEvent`` with ``last_chunk=True``, except that ``result`` is stored
        as given (a dict stays a dict, a string stays a string; a form task's dict is stored
        as ``{form_id: {...}}``; values JSON has no type for are stored as their ``str()``;
        NaN is refused with :class:`InvalidInput` and nothing is set). The task finishes when
        ``execute`` returns; call this last."""
        encode_json(result)  # refuses what the result column cannot hold, now
        with self._lock:
            self._result.output = result
            self._result.has_output = True
            self._result.outcome = Outcome.COMPLETED
        return READY

    def step_started(self) -> Awaitable[None]:
        return self._emit("step_started", {})

    def step_finished(self, usage: dict[str, Any] | None = None) -> Awaitable[None]:
        return self._emit("step_finished", {"usage": usage or {}})

    def _emit(self, event_type: str, data: Any) -> Awaitable[None]:
        record, encoded = EventRecord.build(event_type, data, job_id=self._run.id_str)
        return self._run.emit(record, encoded)

    def _status(self, event: TaskStatusUpdateEvent) -> _Fields:
        status = event.status
        state = status.state
        text = _message_text(status.message) if status.HasField("message") else ""
        data = parse_text(text) if text else {}
        fields: _Fields
        if event.HasField("metadata"):
            meta = _metadata_fields(event.metadata)
            event_type = meta.get("event_type") or STATE_EVENT_TYPES.get(
                state, EventType.TASK_WORKING
            )
            record, encoded = EventRecord.build(
                str(event_type),
                data,
                job_id=str(meta.get("job_id") or self._run.id_str),
                crew_type=_opt_str(meta.get("crew_type")),
                status=_opt_str(meta.get("status")),
            )
            fields = (
                record.event_type,
                record.job_id,
                record.crew_type,
                record.status.value if record.status else None,
                encoded,
            )
        else:  # the usual case: the type follows from the state, the job is the task
            event_type_name = _STATE_EVENT_NAMES.get(state, EventType.TASK_WORKING.value)
            fields = (event_type_name, self._run.id_str, None, None, encode_event_data(data))
        outcome = _FINAL_STATES.get(state)
        if outcome is not None:
            self._result.outcome = outcome
            self._result.message = text or None
            if outcome is Outcome.COMPLETED and not self._result.has_output and text:
                self._result.output = data
        return fields

    def _artifact(self, event: TaskArtifactUpdateEvent) -> None:
        content = _parts_content(event.artifact.parts)
        if event.last_chunk:
            if event.append and isinstance(content, str) and self._result.draft_text:
                content = parse_text("".join([*self._result.draft_text, content]))
            self._result.output = content
            self._result.has_output = True
            if self._result.outcome is None:
                self._result.outcome = Outcome.COMPLETED
            return
        if event.append and isinstance(content, str):
            self._result.draft_text.append(content)
            self._run.set_draft("".join(self._result.draft_text))
        else:
            self._result.draft_text = [content] if isinstance(content, str) else []
            self._run.set_draft(content)

    def _message(self, message: Message) -> tuple[EventRecord, str]:
        text = _message_text(message)
        data = parse_text(text) if text else _parts_content(message.parts)
        self._result.last_message = data
        return EventRecord.build(EventType.TASK_WORKING, data, job_id=self._run.id_str)


def _require_files(files: TaskFiles | None) -> TaskFiles:
    if files is None:
        raise InvalidConfiguration(
            "this worker has no file storage (the composition root gives it one)"
        )
    return files


def _to_core(event: Any) -> Any:
    """Normalise an event to a2a-sdk 1.x protobuf types."""
    if isinstance(event, t03.TaskStatusUpdateEvent):
        return v03.to_core_task_status_update_event(event)
    if isinstance(event, t03.TaskArtifactUpdateEvent):
        return v03.to_core_task_artifact_update_event(event)
    if isinstance(event, t03.Message):
        return v03.to_core_message(event)
    if isinstance(event, t03.Task):
        return v03.to_core_task(event)
    if isinstance(event, TaskStatusUpdateEvent | TaskArtifactUpdateEvent | Message | Task):
        return event
    raise InvalidInput(f"cannot enqueue an event of type {type(event).__name__}")


_CORE_TYPES = frozenset({TaskStatusUpdateEvent, TaskArtifactUpdateEvent, Message, Task})
_STATE_EVENT_NAMES = {state: event_type.value for state, event_type in STATE_EVENT_TYPES.items()}
_Fields = tuple[str, str, str | None, str | None, str]
"""An event's event_type, job_id, crew_type, status and encoded data."""


_METADATA_KEYS = ("event_type", "job_id", "crew_type", "status")


def _metadata_fields(metadata: Any) -> dict[str, Any]:
    """The keys of an event's metadata (a protobuf ``Struct``) that the mapping reads."""
    fields = metadata.fields
    found: dict[str, Any] = {}
    for key in _METADATA_KEYS:
        if key in fields:
            value = fields[key]
            found[key] = (
                value.string_value
                if value.WhichOneof("kind") == "string_value"
                else json_format.MessageToDict(value)
            )
    return found


def _message_text(message: Message) -> str:
    parts = message.parts
    if len(parts) == 1:  # the usual case; a part that is not text has text ""
        text: str = parts[0].text
        return text
    return "\n".join(p.text for p in parts if p.WhichOneof("content") == "text")


def _parts_content(parts: Any) -> Any:
    """Text parts joined (and parsed when JSON); a lone data part as its value."""
    if len(parts) == 1 and parts[0].WhichOneof("content") == "text":
        return parse_text(parts[0].text)
    texts = [p.text for p in parts if p.WhichOneof("content") == "text"]
    data = [
        json_format.MessageToDict(p.data) if hasattr(p.data, "DESCRIPTOR") else p.data
        for p in parts
        if p.WhichOneof("content") == "data"
    ]
    if texts:
        return parse_text("\n".join(texts))
    if len(data) == 1:
        return data[0]
    return data or None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def store_as_form_result(output: Any, form_id: str | None) -> Any:
    """ProcessGPT stores a form task's result as ``{<form_id>: {field: value}}``."""
    if form_id and isinstance(output, dict) and not (len(output) == 1 and form_id in output):
        return {form_id: output}
    return output

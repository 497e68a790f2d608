"""Every agent as an A2A agent: ``/a2a/{agent}/`` (JSON-RPC, protocol 1.0 and the 0.3 method
names) and its card at ``/a2a/{agent}/.well-known/agent-card.json``.

Design: a2a-sdk's server side does the protocol (JSON-RPC parsing and validation, the 0.3
compatibility adapter, SSE framing, error codes), and :class:`TodolistRequestHandler` — an
implementation of a2a-sdk's ``RequestHandler`` interface — answers every call from Postgres
instead of from an in-process executor. The SDK's ``DefaultRequestHandler`` is not used: it
keeps running tasks in in-memory queues, so ``SubscribeToTask`` only works on the API process
that started the task and only while it runs. Here:

- an A2A message creates a ``todolist`` task (``agent_orch`` = the agent of the URL, ``query``
  = the message's text, ``input`` = the message metadata's ``input`` object, idempotency key
  ``a2a:<messageId>`` so a client's retry does not run the task twice) which a worker runs like
  any other; a message naming the ``taskId`` of a task waiting for input answers it instead;
- the A2A stream is a view of the task's event log, followed through the :class:`EventHub`:
  every event is a ``working`` ``TaskStatusUpdateEvent`` (its text is the event data, its
  metadata ``{event_type, seq}``); the end is a ``TaskArtifactUpdateEvent`` with the result
  (text part for text, data part for JSON) and ``completed``, or ``failed`` / ``canceled`` /
  ``input-required`` (with the question);
- ``tasks/get`` reads the row; ``tasks/resubscribe`` sends the task as it is now, then
  follows the log from there: it works at any time, on any API process, after restarts;
  subscribing to an ended task returns its final snapshot; ``tasks/cancel`` is our cancel;
- A2A ids are ours: task id = the ``todolist`` id, context id = the process instance id (or
  the task id for a task outside a process).

Authentication: the JSON-RPC endpoint takes the same API keys / JWTs as ``/v1`` (401 without
one) and every call is scoped to the caller's tenant; agent cards are public.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from a2a.helpers import new_data_artifact, new_text_artifact, new_text_message
from a2a.server.context import ServerCallContext
from a2a.server.events import Event as A2AEvent
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Artifact,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    HTTPAuthSecurityScheme,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Role,
    SecurityScheme,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.types import Task as A2ATask
from a2a.types import TaskStatus as A2ATaskStatus
from a2a.utils.errors import (
    A2AError,
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
)
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct
from pydantic import ValidationError

from processgpt import tracing
from processgpt.agents import registry
from processgpt.api.errors import describe_validation
from processgpt.db.hub import TERMINAL, EventHub
from processgpt.db.tasks import PendingGate, TaskRepository
from processgpt.db.workers import ServedAgents
from processgpt.domain.errors import (
    InvalidInput,
    InvalidTransition,
    ProcessGPTError,
    TaskNotFound,
    UnknownAgent,
)
from processgpt.domain.events import Event
from processgpt.domain.task import Task, TaskStatus, TaskSubmission

CARD_PATH = "/.well-known/agent-card.json"
_TENANT = "processgpt_tenant"
_AGENT = "processgpt_agent"
_STOP = TERMINAL | {TaskStatus.INPUT_REQUIRED, TaskStatus.TODO}
_STATES = {
    TaskStatus.PENDING: TaskState.TASK_STATE_SUBMITTED,
    TaskStatus.IN_PROGRESS: TaskState.TASK_STATE_WORKING,
    TaskStatus.DONE: TaskState.TASK_STATE_COMPLETED,
    TaskStatus.FAILED: TaskState.TASK_STATE_FAILED,
    TaskStatus.CANCELLED: TaskState.TASK_STATE_CANCELED,
    TaskStatus.INPUT_REQUIRED: TaskState.TASK_STATE_INPUT_REQUIRED,
    TaskStatus.TODO: TaskState.TASK_STATE_INPUT_REQUIRED,  # a person's work item
}


def _struct(values: dict[str, Any]) -> Struct:
    meta = Struct()
    meta.update(values)
    return meta


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise TaskNotFoundError(message=f"task {value!r} not found") from None


class _Translator:
    """Our rows and events as A2A objects."""

    def __init__(self, task: Task) -> None:
        self.task_id = str(task.id)
        self.context_id = str(task.proc_inst_id or task.id)
        self.question: Any = None  # the last human_asked event's text

    def status(self, state: int, text: str | None = None) -> A2ATaskStatus:
        message = None
        if text is not None:
            message = new_text_message(text, context_id=self.context_id, task_id=self.task_id)
            message.role = Role.ROLE_AGENT
        return A2ATaskStatus(state=state, message=message)  # type: ignore[arg-type]

    def event(self, event: Event) -> TaskStatusUpdateEvent:
        if event.event_type == "human_asked":
            data = event.data
            self.question = data.get("text", data) if isinstance(data, dict) else data
        return TaskStatusUpdateEvent(
            task_id=self.task_id,
            context_id=self.context_id,
            status=self.status(TaskState.TASK_STATE_WORKING, _text(event.data)),
            metadata=_struct({"event_type": event.event_type, "seq": event.seq}),
        )

    def artifact(self, task: Task) -> Artifact:
        artifact_id = f"{self.task_id}-result"
        if isinstance(task.output, dict | list):
            return new_data_artifact("result", task.output, artifact_id=artifact_id)
        return new_text_artifact("result", _text(task.output), artifact_id=artifact_id)

    def final_status(self, task: Task) -> A2ATaskStatus:
        state = _STATES[task.status]
        text: str | None = None
        if task.status is TaskStatus.FAILED and task.error:
            text = _text(task.error.get("message", task.error))
        elif task.status is TaskStatus.INPUT_REQUIRED and self.question is not None:
            text = _text(self.question)
        return self.status(state, text)

    def end(self, task: Task) -> list[A2AEvent]:
        """The events that close a stream for a task in one of ``_STOP``."""
        events: list[A2AEvent] = []
        if task.status is TaskStatus.DONE:
            events.append(
                TaskArtifactUpdateEvent(
                    task_id=self.task_id,
                    context_id=self.context_id,
                    artifact=self.artifact(task),
                    last_chunk=True,
                )
            )
        events.append(
            TaskStatusUpdateEvent(
                task_id=self.task_id, context_id=self.context_id, status=self.final_status(task)
            )
        )
        return events

    def snapshot(self, task: Task) -> A2ATask:
        user = new_text_message(task.query, context_id=self.context_id, task_id=self.task_id)
        user.role = Role.ROLE_USER
        user.message_id = f"{self.task_id}-query"
        status = (
            self.final_status(task) if task.status in _STOP else self.status(_STATES[task.status])
        )
        return A2ATask(
            id=self.task_id,
            context_id=self.context_id,
            status=status,
            artifacts=[self.artifact(task)] if task.status is TaskStatus.DONE else [],
            history=[user],
            metadata=_struct(
                {"agent": task.agent_orch, "status": task.status.value}
                | ({"warnings": task.warnings} if task.warnings else {})
            ),
        )


def _a2a_error(exc: ProcessGPTError) -> A2AError:
    if isinstance(exc, TaskNotFound):
        return TaskNotFoundError(message=exc.message)
    if isinstance(exc, InvalidTransition):
        return TaskNotCancelableError(message=exc.message)
    if isinstance(exc, InvalidInput):
        return InvalidParamsError(message=exc.message)
    return InternalError(message=exc.message)


class TodolistRequestHandler(RequestHandler):
    """a2a-sdk's request-handler interface answered from ``todolist`` and the event log."""

    def __init__(
        self,
        tasks: TaskRepository,
        hub: EventHub,
        known_agents: frozenset[str],
        pending_gate: PendingGate,
        served: ServedAgents,
    ) -> None:
        self.hub = hub
        self.tasks = tasks
        self.known_agents = known_agents
        self.pending_gate = pending_gate
        self.served = served

    @staticmethod
    def _caller(context: ServerCallContext) -> tuple[str, str]:
        return str(context.state[_TENANT]), str(context.state[_AGENT])

    async def _get(self, tenant: str, task_id: str) -> Task:
        try:
            return await self.tasks.get(tenant, _uuid(task_id))
        except ProcessGPTError as exc:
            raise _a2a_error(exc) from None

    async def _start(self, params: SendMessageRequest, context: ServerCallContext) -> Task:
        """A new task for the message, or the answer to the task it names."""
        tenant, agent = self._caller(context)
        message = params.message
        text = "\n".join(p.text for p in message.parts if p.HasField("text"))
        try:
            if message.task_id:
                current = await self._get(tenant, message.task_id)
                if current.status is not TaskStatus.INPUT_REQUIRED:
                    raise InvalidParamsError(
                        message=f"task {message.task_id} is {current.status.value}: only a task "
                        "waiting for input takes a message"
                    )
                return await self.tasks.answer(tenant, current.id, text)
            metadata = MessageToDict(message.metadata) if message.HasField("metadata") else {}
            task_input = metadata.get("input", {})
            if not isinstance(task_input, dict):
                raise InvalidParamsError(message="message metadata 'input' must be an object")
            headers = context.state.get("headers") or {}
            caller = tracing.incoming(headers.get("traceparent"), headers.get("tracestate"))
            with tracing.request_span("a2a SendMessage", caller) as trace_context:
                sub = TaskSubmission(
                    agent_orch=agent,
                    query=text,
                    input=task_input,
                    idempotency_key=(
                        f"a2a:{message.message_id}"[:200] if message.message_id else None
                    ),
                    traceparent=trace_context[0],
                    tracestate=trace_context[1],
                )
                async with self.pending_gate.admit(tenant):  # refused: an InternalError below
                    task, _created = await self.tasks.submit(
                        tenant, sub, known_agents=self.known_agents
                    )
        except ProcessGPTError as exc:
            raise _a2a_error(exc) from None
        except ValidationError as exc:  # pydantic validation of the submission
            raise InvalidParamsError(message=describe_validation(list(exc.errors()))) from None
        return await self.served.warn(task)  # the snapshot's metadata carries the warnings

    async def _follow(self, tenant: str, task: Task, tr: _Translator) -> AsyncIterator[A2AEvent]:
        """The log after the task's ``last_seq`` as A2A events, then the closing events."""
        if task.status in _STOP:
            for event in tr.end(task):
                yield event
            return
        async for item in self.hub.follow(tenant, task.id, after=task.last_seq, until=_STOP):
            if isinstance(item, Event):
                yield tr.event(item)
            elif isinstance(item, Task):
                for event in tr.end(item):
                    yield event
                return

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> A2ATask | Message:
        tenant, _agent = self._caller(context)
        task = await self._start(params, context)
        tr = _Translator(task)
        if not params.configuration.return_immediately and task.status not in _STOP:
            async for item in self.hub.follow(tenant, task.id, after=0, until=_STOP):
                if isinstance(item, Event):
                    tr.event(item)  # remembers the question of a human_asked event
                elif isinstance(item, Task):
                    task = item
                    break
        return tr.snapshot(task)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[A2AEvent]:
        tenant, _agent = self._caller(context)
        task = await self._start(params, context)
        tr = _Translator(task)
        # The log is replayed from the start: a message that matched an earlier one by its
        # idempotency key sees that task's whole stream.
        yield tr.snapshot(task.model_copy(update={"status": TaskStatus.PENDING}))
        async for item in self.hub.follow(tenant, task.id, after=0, until=_STOP):
            if isinstance(item, Event):
                yield tr.event(item)
            elif isinstance(item, Task):
                for event in tr.end(item):
                    yield event
                return

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[A2AEvent]:
        tenant, _agent = self._caller(context)
        task = await self._get(tenant, params.id)
        tr = _Translator(task)
        if task.status is TaskStatus.INPUT_REQUIRED:
            for event in await self.tasks.events(tenant, task.id, after=0, limit=100_000):
                tr.event(event)
        yield tr.snapshot(task)
        if task.status in _STOP:
            return
        async for event in self._follow(tenant, task, tr):
            yield event

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> A2ATask:
        tenant, _agent = self._caller(context)
        task = await self._get(tenant, params.id)
        return _Translator(task).snapshot(task)

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> A2ATask:
        tenant, _agent = self._caller(context)
        try:
            task = await self.tasks.cancel(tenant, _uuid(params.id), "cancelled over A2A")
        except ProcessGPTError as exc:
            raise _a2a_error(exc) from None
        return _Translator(task).snapshot(task)

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        tenant, agent = self._caller(context)
        limit = params.page_size if 0 < params.page_size <= 100 else 50
        items = await self.tasks.list_tasks(tenant, agent_orch=agent, limit=limit)
        return ListTasksResponse(
            tasks=[_Translator(t).snapshot(t) for t in items],
            page_size=limit,
            total_size=len(items),
        )

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError


class _ContextBuilder(DefaultServerCallContextBuilder):
    """Carries the tenant (authenticated by the route) and the agent of the URL."""

    def build(self, request: Any) -> ServerCallContext:
        context = super().build(request)
        headers = context.state.get("headers") or {}
        for secret in ("authorization", "x-api-key", "cookie"):  # keep keys out of the state
            headers.pop(secret, None)
        context.state[_TENANT] = request.state.processgpt_tenant
        context.state[_AGENT] = request.path_params["agent"]
        return context


def agent_card(agent: str, url: str) -> AgentCard:
    description = registry.describe(agent) or f"The processgpt agent {agent!r}."
    return AgentCard(
        name=agent,
        description=description,
        version="0.1.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="0.3"),
        ],
        capabilities=AgentCapabilities(streaming=True),
        security_schemes={
            "bearer": SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="bearer", description="a processgpt API key or JWT"
                )
            )
        },
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain", "application/json"],
        skills=[AgentSkill(id=agent, name=agent, description=description, tags=["processgpt"])],
    )


def _body_problem(body: bytes) -> tuple[int, str] | None:
    """A JSON-RPC error for a body the SDK would answer with an internal error: not UTF-8 or
    nested too deep (parse errors), or holding text that is not valid Unicode (invalid
    params). None otherwise, including for JSON the SDK refuses itself."""
    try:
        text = body.decode("utf-8")
        value = json.loads(text)
    except UnicodeDecodeError:
        return -32700, "the request is not UTF-8 JSON"
    except RecursionError:
        return -32700, "the request is nested too deep"
    except ValueError:
        return None  # not JSON: the SDK answers with its parse error
    if "\\u" in text:  # only an escape can make a lone surrogate out of UTF-8 text
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return -32602, "text must be valid Unicode (no lone surrogates)"
    return None


class A2AService:
    """The A2A side of the API: agent cards and the JSON-RPC endpoint of every agent."""

    def __init__(
        self,
        tasks: TaskRepository,
        hub: EventHub,
        known_agents: frozenset[str],
        pending_gate: PendingGate,
        served: ServedAgents,
    ) -> None:
        self.tasks = tasks
        handler = TodolistRequestHandler(tasks, hub, known_agents, pending_gate, served)
        self._dispatcher = JsonRpcDispatcher(handler, _ContextBuilder(), enable_v0_3_compat=True)
        self._known = known_agents

    async def check_agent(self, agent: str, tenant_id: str | None = None) -> None:
        """Raise :class:`UnknownAgent` (naming the agents there are) unless ``agent`` is an
        orchestrator or (with ``tenant_id``) one of the tenant's agent profiles."""
        if agent not in self._known and not await self.tasks.agent_exists(tenant_id, agent):
            raise UnknownAgent(agent, await self.tasks.agent_names(tenant_id, self._known))

    async def card(self, agent: str, base_url: str) -> dict[str, Any]:
        """The agent card of an orchestrator (profiles are the tenant's: no public card)."""
        await self.check_agent(agent)
        url = f"{base_url.rstrip('/')}/a2a/{agent}/"
        card: dict[str, Any] = agent_card_to_dict(agent_card(agent, url))
        return card

    async def handle(self, request: Request, tenant_id: str) -> Response:
        """Answer one JSON-RPC request (or stream) of the agent in the URL for ``tenant_id``.
        Bodies the SDK would answer with an internal error quoting its decoder get a proper
        JSON-RPC error instead (see :func:`_body_problem`)."""
        problem = _body_problem(await request.body())
        if problem is not None:
            code, message = problem
            return JSONResponse(
                {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
            )
        request.state.processgpt_tenant = tenant_id
        response: Response = await self._dispatcher.handle_requests(request)
        return response

"""The FastAPI application: ``create_app(db, settings)``."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from processgpt.agents import registry
from processgpt.api import agents_api, errors, process_stream
from processgpt.api.a2a import install_a2a_routes
from processgpt.api.auth import Authenticator, Tenant
from processgpt.api.chat import install_chat_routes
from processgpt.api.console import install_console
from processgpt.api.credential_watch import CredentialWatch, WatchCredentials
from processgpt.api.streams import sse_task_stream
from processgpt.config import Settings
from processgpt.db.api_keys import REVOCATIONS_CHANNEL, ApiKeyRepository
from processgpt.db.database import Database
from processgpt.db.hub import EventHub
from processgpt.db.processes import ProcessRepository
from processgpt.db.tasks import PendingGate, TaskRepository
from processgpt.domain.errors import InvalidInput, PayloadTooLarge
from processgpt.domain.events import Event
from processgpt.domain.task import Task, TaskStatus, TaskSubmission
from processgpt.protocols import ai_sdk

MAX_BODY_BYTES = 2_000_000

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class _BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413 before they reach a route."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            response = errors.error_response(
                "payload_too_large", f"request bodies are limited to {self.limit} bytes", 413
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise PayloadTooLarge(f"request bodies are limited to {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


class TaskCreate(BaseModel):
    """A task to run (``POST /v1/tasks``); the idempotency key comes from the
    ``Idempotency-Key`` header."""

    model_config = ConfigDict(extra="forbid")

    agent_orch: str = Field(examples=["demo"])
    query: str = ""
    input: dict[str, Any] = Field(default_factory=dict)
    priority: int = 0
    max_attempts: int = 3
    run_at: datetime | None = None
    proc_inst_id: uuid.UUID | None = None
    activity_id: str | None = None
    activity_name: str | None = None
    user_id: str | None = None
    tool: str | None = None
    description: str | None = None


class ProcessCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=500)
    proc_def_id: str | None = Field(default=None, max_length=200)
    variables: dict[str, Any] = Field(default_factory=dict)
    task: TaskCreate


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: str | None


class EventPage(BaseModel):
    items: list[Event]
    next_after: int


class ProcessView(BaseModel):
    process: dict[str, Any]
    tasks: list[Task]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: Any


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feedback: Any


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="cancelled", max_length=1000)


def _encode_cursor(task: Task) -> str:
    raw = f"{task.created_at.isoformat()}|{task.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, _, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(task_id)
    except ValueError:
        raise InvalidInput("cursor is not valid", field="cursor") from None


def create_app(db: Database, settings: Settings) -> FastAPI:  # noqa: PLR0915 - the route table
    """The API bound to ``db``. Its lifespan runs the event hub (one LISTEN connection)."""
    hub = EventHub(db)
    tasks = TaskRepository(db)
    processes = ProcessRepository(db)
    auth = Authenticator(
        ApiKeyRepository(db),
        jwt_secret=settings.jwt_secret,
        jwt_jwks_url=settings.jwt_jwks_url,
        jwt_audience=settings.jwt_audience,
    )
    watch = CredentialWatch(auth)  # ends streams whose key is revoked or token expires

    def key_revoked(prefix: str) -> None:
        auth.forget_keys()
        watch.key_revoked(prefix)

    def listener_reconnected() -> None:  # revocations may have been missed meanwhile
        auth.forget_keys()
        watch.recheck_all()

    hub.listener.subscribe(REVOCATIONS_CHANNEL, key_revoked)
    hub.listener.on_reconnect(listener_reconnected)
    builtins = frozenset(registry.available())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub_task = asyncio.create_task(hub.run(), name="event-hub")
        try:
            yield
        finally:
            await _app.state.chat_sockets.shutdown()  # GRACEFUL_DISCONNECT to chat sockets
            hub_task.cancel()
            await asyncio.gather(hub_task, return_exceptions=True)
            await watch.aclose()

    app = FastAPI(
        title="processgpt",
        version="0.1.0",
        lifespan=lifespan,
        description="Execution API: start processes and tasks, follow them live.",
    )
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(WatchCredentials, watch=watch)
    errors.install(app)
    app.state.hub = hub

    app.state.auth = auth

    pending_gate = PendingGate(tasks, settings.max_pending_tasks)  # shared by every create

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        try:
            await asyncio.wait_for(db.fetchval("SELECT 1"), timeout=2)
        except Exception:  # noqa: BLE001 - any failure means not ready
            return errors.error_response("not_ready", "the database does not answer", 503)
        if not hub.listener.connected.is_set():  # live streams would fall back to polling
            return errors.error_response("not_ready", "not listening for events yet", 503)
        return JSONResponse({"status": "ready"})

    @app.post("/v1/tasks", status_code=201, tags=["tasks"])
    async def create_task(
        body: TaskCreate,
        tenant_id: Tenant,
        response: Response,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Task:
        sub = TaskSubmission(**body.model_dump(), idempotency_key=idempotency_key)
        if idempotency_key is not None:  # a retried create is answered even when saturated
            earlier = await tasks.by_idempotency_key(tenant_id, idempotency_key)
            if earlier is not None:
                response.status_code = 200
                return earlier
        async with pending_gate.admit(tenant_id):
            task, created = await tasks.submit(tenant_id, sub, known_agents=builtins)
        if not created:
            response.status_code = 200
        return task

    @app.get("/v1/tasks", tags=["tasks"])
    async def list_tasks(
        tenant_id: Tenant,
        *,
        status: TaskStatus | None = None,
        agent_orch: str | None = None,
        proc_inst_id: uuid.UUID | None = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> TaskPage:
        before = _decode_cursor(cursor) if cursor else None
        items = await tasks.list_tasks(
            tenant_id,
            status=status,
            agent_orch=agent_orch,
            proc_inst_id=proc_inst_id,
            before=before,
            limit=limit,
        )
        next_cursor = _encode_cursor(items[-1]) if len(items) == limit else None
        return TaskPage(items=items, next_cursor=next_cursor)

    @app.get("/v1/tasks/{task_id}", tags=["tasks"])
    async def get_task(task_id: uuid.UUID, tenant_id: Tenant) -> Task:
        return await tasks.get(tenant_id, task_id)

    @app.post("/v1/tasks/{task_id}/cancel", tags=["tasks"])
    async def cancel_task(
        task_id: uuid.UUID, tenant_id: Tenant, body: Annotated[CancelRequest | None, Body()] = None
    ) -> Task:
        return await tasks.cancel(tenant_id, task_id, (body or CancelRequest()).reason)

    @app.post("/v1/tasks/{task_id}/requeue", tags=["tasks"])
    async def requeue_task(task_id: uuid.UUID, tenant_id: Tenant) -> Task:
        return await tasks.requeue(tenant_id, task_id)

    @app.post("/v1/tasks/{task_id}/input", tags=["tasks"])
    async def answer_task(task_id: uuid.UUID, body: Answer, tenant_id: Tenant) -> Task:
        return await tasks.answer(tenant_id, task_id, body.answer)

    @app.post("/v1/tasks/{task_id}/feedback", tags=["tasks"])
    async def feedback_task(task_id: uuid.UUID, body: Feedback, tenant_id: Tenant) -> Task:
        return await tasks.set_feedback(tenant_id, task_id, body.feedback)

    @app.get("/v1/tasks/{task_id}/events", tags=["tasks"])
    async def task_events(
        task_id: uuid.UUID,
        tenant_id: Tenant,
        after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    ) -> EventPage:
        items = await tasks.events(tenant_id, task_id, after=after, limit=limit)
        return EventPage(items=items, next_after=items[-1].seq if items else after)

    @app.get(
        "/v1/tasks/{task_id}/stream",
        tags=["streams"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def task_stream(
        task_id: uuid.UUID,
        tenant_id: Tenant,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        """The task as a Vercel AI SDK UI message stream (v1). Without ``Last-Event-ID`` the
        whole task is replayed, then followed live until it ends."""
        after = 0
        if last_event_id:
            if not (last_event_id.isascii() and last_event_id.isdigit()) or len(last_event_id) > 18:
                raise InvalidInput("Last-Event-ID must be an event sequence number")
            after = int(last_event_id)
        await tasks.get(tenant_id, task_id)  # 404 before the stream starts
        return StreamingResponse(
            sse_task_stream(hub, tenant_id, task_id, after=after, heartbeat=settings.sse_heartbeat),
            headers=ai_sdk.HEADERS,
            media_type="text/event-stream",
        )

    @app.post("/v1/processes", status_code=201, tags=["processes"])
    async def start_process(body: ProcessCreate, tenant_id: Tenant) -> ProcessView:
        first = TaskSubmission(**body.task.model_dump(exclude={"proc_inst_id"}))
        async with pending_gate.admit(tenant_id):
            inst, task = await processes.start(
                tenant_id,
                first,
                name=body.name,
                proc_def_id=body.proc_def_id,
                variables=body.variables,
            )
        return ProcessView(process=inst, tasks=[task])

    @app.get("/v1/processes/{proc_inst_id}", tags=["processes"])
    async def get_process(proc_inst_id: uuid.UUID, tenant_id: Tenant) -> ProcessView:
        inst, items = await processes.get(tenant_id, proc_inst_id)
        return ProcessView(process=inst, tasks=items)

    process_stream.install(app, hub, settings)
    install_console(app)
    install_chat_routes(  # WebSocket chat and AI SDK useChat (see api/chat.py)
        app,
        db,
        hub,
        known_agents=builtins,
        pending_gate=pending_gate,
        heartbeat=settings.sse_heartbeat,
    )
    # A2A server (see api/a2a.py)
    install_a2a_routes(app, db, hub, builtins, pending_gate=pending_gate)
    agents_api.install(app, db)  # /v1/agents and /v1/mcp-servers (see api/agents_api.py)
    return app

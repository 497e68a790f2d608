"""``/v1/tasks``: create, list, read and change tasks; their event log and live stream."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from processgpt import tracing
from processgpt.api import sse
from processgpt.api.cursors import decode_cursor, encode_cursor
from processgpt.api.deps import (
    CallerTrace,
    FilesDep,
    HubDep,
    ServedDep,
    ServicesDep,
    SettingsDep,
    TasksDep,
    Tenant,
)
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.api.streams import sse_task_stream
from processgpt.db.workers import ServedAgents
from processgpt.domain.errors import InvalidInput
from processgpt.domain.files import parse_file_ids
from processgpt.domain.task import Task, TaskFields, TaskStatus, TaskSubmission, check_text
from processgpt.protocols.views import (
    WARNING_HEADER,
    Answer,
    CancelRequest,
    EventPage,
    Feedback,
    TaskPage,
)

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], responses=responses(*AUTHENTICATED))

_SEARCH = (
    "Text to find (case-insensitive) in the query, the activity name or the agent, or a task id."
)
_IDEMPOTENCY_KEY = Header(
    min_length=1,
    max_length=200,
    description="Same key, same task: a retried create returns the earlier task (200).",
)


@router.post(
    "",
    status_code=201,
    responses={
        200: {"model": Task, "description": "An earlier task with the same Idempotency-Key."},
        **responses(*WITH_BODY, 404, 429),
    },
)
async def create_task(
    body: Annotated[
        TaskFields,
        Body(
            openapi_examples={
                "demo": {
                    "summary": "A demo task",
                    "value": {"agent_orch": "demo", "query": "hello", "input": {"steps": 2}},
                }
            }
        ),
    ],
    tenant_id: Tenant,
    services: ServicesDep,
    response: Response,
    *,
    idempotency_key: Annotated[str | None, _IDEMPOTENCY_KEY] = None,
    caller: CallerTrace,
) -> Task:
    """Queue a task for an agent. A worker serving the agent runs it; follow it with
    `GET /v1/tasks/{id}/stream`. When no live worker serves the agent, the task is queued all
    the same (it waits for one) and the answer says so: an entry in `warnings`, repeated in
    an `X-ProcessGPT-Warning` header. `input.files`: ids of the tenant's files
    (`POST /v1/files`) handed to the agent (404 `file_not_found` for any other)."""
    file_ids = parse_file_ids(body.input["files"], "input.files") if "files" in body.input else []
    tasks = services.tasks
    if idempotency_key is not None:  # a retried create is answered even when saturated
        earlier = await tasks.by_idempotency_key(tenant_id, idempotency_key)
        if earlier is not None:
            response.status_code = 200
            return await _warned(earlier, services.served, response)
    with tracing.request_span("POST /v1/tasks", caller) as tc:
        sub = TaskSubmission(
            **body.model_dump(),
            idempotency_key=idempotency_key,
            traceparent=tc[0],
            tracestate=tc[1],
        )
        async with services.pending_gate.admit(tenant_id):
            if file_ids:
                task, created = await services.files.repo.submit_task_with_files(
                    tasks, tenant_id, sub, file_ids, known_agents=services.known_agents
                )
            else:
                task, created = await tasks.submit(
                    tenant_id, sub, known_agents=services.known_agents
                )
    if not created:
        response.status_code = 200
    return await _warned(task, services.served, response)


async def _warned(task: Task, served: ServedAgents, response: Response) -> Task:
    """The task with its warnings, each also sent as an ``X-ProcessGPT-Warning`` header."""
    task = await served.warn(task)
    for warning in task.warnings:
        response.headers.append(WARNING_HEADER, warning)
    return task


@router.get("", responses=responses(422))
async def list_tasks(
    tenant_id: Tenant,
    tasks: TasksDep,
    *,
    status: TaskStatus | None = None,
    agent_orch: Annotated[str | None, Query(max_length=64)] = None,
    proc_inst_id: uuid.UUID | None = None,
    q: Annotated[str | None, Query(max_length=200, description=_SEARCH)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TaskPage:
    """The tenant's tasks, newest first, a page at a time (pass `next_cursor` as `cursor`)."""
    before = decode_cursor(cursor) if cursor else None
    if q is not None:
        try:
            check_text(q)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="q") from None
    items = await tasks.list_tasks(
        tenant_id,
        status=status,
        agent_orch=agent_orch,
        proc_inst_id=proc_inst_id,
        before=before,
        limit=limit,
        search=q.strip() or None if q is not None else None,
    )
    last = items[-1] if len(items) == limit else None
    next_cursor = encode_cursor(last.created_at, last.id) if last is not None else None
    return TaskPage(items=items, next_cursor=next_cursor)


@router.get("/{task_id}", responses=responses(404, 422))
async def get_task(
    task_id: uuid.UUID, tenant_id: Tenant, tasks: TasksDep, served: ServedDep
) -> Task:
    """The task as it is now; while it is PENDING and no live worker serves its agent, its
    `warnings` say so."""
    return await served.warn(await tasks.get(tenant_id, task_id))


@router.post("/{task_id}/cancel", responses=responses(*WITH_BODY, 404, 409))
async def cancel_task(
    task_id: uuid.UUID,
    tenant_id: Tenant,
    tasks: TasksDep,
    body: Annotated[CancelRequest | None, Body(examples=[{"reason": "not needed"}])] = None,
) -> Task:
    """Cancel a task that has not ended; a running agent is stopped within milliseconds."""
    return await tasks.cancel(tenant_id, task_id, (body or CancelRequest()).reason)


@router.post("/{task_id}/requeue", responses=responses(404, 409, 422))
async def requeue_task(task_id: uuid.UUID, tenant_id: Tenant, tasks: TasksDep) -> Task:
    """Queue a FAILED or CANCELLED task again, its attempts reset."""
    return await tasks.requeue(tenant_id, task_id)


@router.post("/{task_id}/input", responses=responses(*WITH_BODY, 404, 409))
async def answer_task(task_id: uuid.UUID, body: Answer, tenant_id: Tenant, tasks: TasksDep) -> Task:
    """Answer a task waiting for input (INPUT_REQUIRED): it is queued again with the answer."""
    return await tasks.answer(tenant_id, task_id, body.answer)


@router.post("/{task_id}/feedback", responses=responses(*WITH_BODY, 404))
async def feedback_task(
    task_id: uuid.UUID, body: Feedback, tenant_id: Tenant, tasks: TasksDep
) -> Task:
    """Record feedback on the task's work."""
    return await tasks.set_feedback(tenant_id, task_id, body.feedback)


@router.get("/{task_id}/events", responses=responses(404, 422))
async def task_events(
    task_id: uuid.UUID,
    tenant_id: Tenant,
    tasks: TasksDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> EventPage:
    """A page of the task's event log after sequence number `after`."""
    items = await tasks.events(tenant_id, task_id, after=after, limit=limit)
    return EventPage(items=items, next_after=items[-1].seq if items else after)


@router.get(
    "/{task_id}/stream",
    tags=["streams"],
    response_class=StreamingResponse,
    responses={**sse.OPENAPI, **responses(404, 422)},
)
async def task_stream(
    task_id: uuid.UUID,
    tenant_id: Tenant,
    tasks: TasksDep,
    *,
    hub: HubDep,
    settings: SettingsDep,
    files: FilesDep,
    request: Request,
    last_event_id: Annotated[str | None, Header(max_length=100)] = None,
) -> StreamingResponse:
    """The task as a Vercel AI SDK UI message stream (v1). Without `Last-Event-ID` the whole
    task is replayed, then followed live until it ends; with it, exactly the events after
    that sequence number."""
    after = 0
    if last_event_id:
        if not (last_event_id.isascii() and last_event_id.isdigit()) or len(last_event_id) > 18:
            raise InvalidInput("Last-Event-ID must be an event sequence number")
        after = int(last_event_id)
    await tasks.get(tenant_id, task_id)  # 404 before the stream starts
    return sse.event_stream(
        sse_task_stream(
            hub,
            tenant_id,
            task_id,
            after=after,
            heartbeat=settings.sse_heartbeat,
            file_url=files.link_maker(tenant_id, str(request.base_url)),
        )
    )

"""``/v1/processes``: start process instances (from a published definition, or the one-task
form), list and read them, their history, live stream, and the changes a caller may make:
cancel, migrate to another version, deliver a message. Incidents: :mod:`.incidents`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Response
from fastapi.responses import StreamingResponse

from processgpt import tracing
from processgpt.api import sse
from processgpt.api.cursors import decode_cursor, encode_cursor
from processgpt.api.deps import (
    CallerTrace,
    GateDep,
    HubDep,
    ProcessesDep,
    ProcessServiceDep,
    SettingsDep,
    Tenant,
    idempotency_key_of,
)
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.api.process_stream import decode_cursor as decode_stream_cursor
from processgpt.api.process_stream import sse_process_stream
from processgpt.db.processes import ProcessRepository
from processgpt.domain.errors import InvalidInput, ProcessNotFound
from processgpt.domain.process.instance import ProcessInstance
from processgpt.domain.process.state import InstanceStatus
from processgpt.domain.task import TaskSubmission
from processgpt.protocols.process_views import (
    HistoryLineView,
    HistoryPage,
    ProcessCancel,
    ProcessCreate,
    ProcessDetail,
    ProcessInstancePage,
    ProcessInstanceView,
    ProcessMigrate,
)
from processgpt.protocols.views import ProcessView

router = APIRouter(prefix="/v1/processes", tags=["processes"], responses=responses(*AUTHENTICATED))

_IDEMPOTENCY_KEY = Header(
    min_length=1,
    max_length=200,
    description="Same key, same instance (the `idempotency_key` field, as a header): a "
    "retried start answers the instance it started (200).",
)
MESSAGE_NAME = Path(min_length=1, max_length=200, description="The message's name.")
SIGNAL_NAME = Path(min_length=1, max_length=200, description="The signal's name.")


async def detail(
    processes: ProcessRepository, tenant_id: str, inst: ProcessInstance
) -> ProcessDetail:
    """The instance with its row and tasks as they are now (read after ``inst``)."""
    row, tasks = await processes.get(tenant_id, inst.id)
    return ProcessDetail.build(inst, row, tasks)


@router.post(
    "",
    status_code=201,
    response_model=ProcessDetail | ProcessView,
    responses={
        200: {"model": ProcessDetail, "description": "An earlier start with the same key."},
        **responses(*WITH_BODY, 404, 429),
    },
)
async def start_process(
    body: ProcessCreate,
    tenant_id: Tenant,
    *,
    processes: ProcessesDep,
    service: ProcessServiceDep,
    gate: GateDep,
    response: Response,
    caller: CallerTrace,
    idempotency_key: Annotated[str | None, _IDEMPOTENCY_KEY] = None,
) -> ProcessDetail | ProcessView:
    """Start a process instance.

    Without `task`: an instance of the published definition `proc_def_id` (its latest
    version, or `version`), with `variables` and role bindings `roles`; its first steps
    (work items for people and agents, timers) are created in the same transaction. 201;
    the same `idempotency_key` (field or header) again answers the instance it started (200).
    404 `definition_not_found` when there is no such definition or version.

    With `task` (the one-task form): an instance with that first task, which no engine
    advances; answered as `{"process", "tasks"}`."""
    if body.task is not None:
        if idempotency_key is not None:
            raise InvalidInput(
                "Idempotency-Key starts instances of a definition; the one-task form takes "
                "none (put it on the task's own POST /v1/tasks)",
                field="idempotency_key",
            )
        with tracing.request_span("POST /v1/processes", caller) as trace:
            first = TaskSubmission(
                **body.task.model_dump(exclude={"proc_inst_id"}),
                traceparent=trace[0],
                tracestate=trace[1],
            )
            async with gate.admit(tenant_id):
                row, task = await processes.start(
                    tenant_id,
                    first,
                    name=body.name,
                    proc_def_id=body.proc_def_id,
                    variables=body.variables,
                )
        return ProcessView(process=row, tasks=[task])
    assert body.proc_def_id is not None  # the model requires it without task
    key = idempotency_key_of(body.idempotency_key, idempotency_key)
    with tracing.request_span("POST /v1/processes", caller) as trace:
        async with gate.admit(tenant_id):
            inst, created = await service.start(
                tenant_id,
                body.proc_def_id,
                version=body.version,
                variables=body.variables,
                roles=body.roles,
                name=body.name,
                idempotency_key=key,
                trace=trace,
            )
    if not created:
        response.status_code = 200
    return await detail(processes, tenant_id, inst)


@router.get("", responses=responses(422))
async def list_processes(
    tenant_id: Tenant,
    service: ProcessServiceDep,
    *,
    proc_def_id: Annotated[str | None, Query(max_length=200)] = None,
    status: InstanceStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ProcessInstancePage:
    """The tenant's process instances, newest first, a page at a time (pass `next_cursor`
    as `cursor`); `proc_def_id` and `status` filter them."""
    before = decode_cursor(cursor) if cursor else None
    items = await service.list(
        tenant_id, proc_def_id=proc_def_id, status=status, limit=limit, before=before
    )
    last = items[-1] if len(items) == limit else None
    next_cursor = None
    if last is not None and last.start_date is not None:
        next_cursor = encode_cursor(last.start_date, last.id)
    return ProcessInstancePage(
        items=[ProcessInstanceView.of(i) for i in items], next_cursor=next_cursor
    )


@router.get("/{proc_inst_id}", responses=responses(404, 422))
async def get_process(
    proc_inst_id: uuid.UUID,
    tenant_id: Tenant,
    processes: ProcessesDep,
    service: ProcessServiceDep,
) -> ProcessDetail:
    """The instance: status, where it waits (`current_activity_ids`), variables, open
    incidents, its open tasks and all its tasks."""
    return await detail(processes, tenant_id, await service.get(tenant_id, proc_inst_id))


@router.get("/{proc_inst_id}/history", responses=responses(404, 422))
async def process_history(
    proc_inst_id: uuid.UUID,
    tenant_id: Tenant,
    service: ProcessServiceDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> HistoryPage:
    """A page of the instance's history after `after` (lines are numbered 1, 2, … without
    gaps): steps started and completed, gateway decisions with their reasons, timers,
    messages, incidents, migrations, the end."""
    lines = await service.history(tenant_id, proc_inst_id, after_seq=after, limit=limit)
    return HistoryPage(
        items=[HistoryLineView.of(line) for line in lines],
        next_after=lines[-1].seq if lines else after,
    )


@router.post("/{proc_inst_id}/cancel", responses=responses(*WITH_BODY, 404, 409))
async def cancel_process(
    proc_inst_id: uuid.UUID,
    tenant_id: Tenant,
    processes: ProcessesDep,
    service: ProcessServiceDep,
    body: Annotated[ProcessCancel | None, Body(examples=[{"reason": "withdrawn"}])] = None,
) -> ProcessDetail:
    """Cancel the instance with its open tasks, timers and child instances, in one
    transaction. 409 `invalid_state` when it has already ended."""
    reason = (body or ProcessCancel()).reason
    inst = await service.cancel(tenant_id, proc_inst_id, reason)
    return await detail(processes, tenant_id, inst)


@router.post("/{proc_inst_id}/migrate", responses=responses(*WITH_BODY, 404, 409))
async def migrate_process(
    proc_inst_id: uuid.UUID,
    body: ProcessMigrate,
    tenant_id: Tenant,
    processes: ProcessesDep,
    service: ProcessServiceDep,
) -> ProcessDetail:
    """Move the instance to version `to_version` of its definition; `mapping` renames the
    nodes where it waits (old id → new id). Recorded in its history. 422 listing every
    problem when the mapping cannot apply; 404 when there is no such version."""
    inst = await service.migrate(
        tenant_id, proc_inst_id, to_version=body.to_version, mapping=body.mapping
    )
    return await detail(processes, tenant_id, inst)


@router.post("/{proc_inst_id}/messages/{name}", responses=responses(*WITH_BODY, 404, 409))
async def send_message(
    proc_inst_id: uuid.UUID,
    name: Annotated[str, MESSAGE_NAME],
    tenant_id: Tenant,
    *,
    processes: ProcessesDep,
    service: ProcessServiceDep,
    payload: Annotated[
        dict[str, Any] | None,
        Body(
            description="The message's payload: merged into the instance's variables.",
            examples=[{"paid": True}],
        ),
    ] = None,
) -> ProcessDetail:
    """Deliver message `name` to the oldest step waiting for it (a message catch event);
    its payload is merged into the variables. 409 `invalid_state` when nothing waits for
    it."""
    inst = await service.send_message(tenant_id, proc_inst_id, name, payload or {})
    return await detail(processes, tenant_id, inst)


@router.post("/{proc_inst_id}/signals/{name}", responses=responses(*WITH_BODY, 404, 409))
async def send_signal(
    proc_inst_id: uuid.UUID,
    name: Annotated[str, SIGNAL_NAME],
    tenant_id: Tenant,
    *,
    processes: ProcessesDep,
    service: ProcessServiceDep,
    payload: Annotated[
        dict[str, Any] | None,
        Body(
            description="The signal's payload: merged into the instance's variables when a "
            "step waits for the signal.",
            examples=[{"recalled": True}],
        ),
    ] = None,
) -> ProcessDetail:
    """Deliver signal `name` to every step of the instance waiting for it (signal catch
    events). A signal is a broadcast: when nothing waits for it, nothing changes and the
    answer is still 200. 409 `invalid_state` when the instance has ended."""
    inst = await service.send_signal(tenant_id, proc_inst_id, name, payload or {})
    return await detail(processes, tenant_id, inst)


@router.get(
    "/{proc_inst_id}/stream",
    tags=["streams"],
    response_class=StreamingResponse,
    responses={**sse.OPENAPI, **responses(404, 422)},
)
async def process_stream(
    proc_inst_id: uuid.UUID,
    tenant_id: Tenant,
    processes: ProcessesDep,
    service: ProcessServiceDep,
    *,
    hub: HubDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(max_length=100_000)] = None,
) -> StreamingResponse:
    """The instance live, as one AI SDK UI message stream: its history as
    `data-process_event` parts (steps started and completed, gateway decisions, incidents,
    the end) and every task's events and states as `data-task_event` / `data-task_status`
    parts, replayed then followed until the instance and all its tasks have ended.
    `Last-Event-ID` (an id of this stream) resumes exactly after it."""
    cursor = decode_stream_cursor(last_event_id) if last_event_id else None
    if not await processes.stream_state(tenant_id, proc_inst_id):
        raise ProcessNotFound(proc_inst_id)
    return sse.event_stream(
        sse_process_stream(
            hub,
            processes,
            service,
            tenant_id,
            proc_inst_id,
            cursor=cursor,
            heartbeat=settings.sse_heartbeat,
        )
    )

"""``/v1/processes``: start a process instance with its first task, read it, follow it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from processgpt.api import sse
from processgpt.api.deps import GateDep, HubDep, ProcessesDep, SettingsDep, Tenant
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.api.process_stream import decode_cursor, sse_process_stream
from processgpt.domain.errors import ProcessNotFound
from processgpt.domain.task import TaskSubmission
from processgpt.protocols.views import ProcessCreate, ProcessView

router = APIRouter(prefix="/v1/processes", tags=["processes"], responses=responses(*AUTHENTICATED))


@router.post("", status_code=201, responses=responses(*WITH_BODY, 429))
async def start_process(
    body: ProcessCreate, tenant_id: Tenant, processes: ProcessesDep, gate: GateDep
) -> ProcessView:
    """Start a process instance (RUNNING) with its first task, in one transaction."""
    first = TaskSubmission(**body.task.model_dump(exclude={"proc_inst_id"}))
    async with gate.admit(tenant_id):
        inst, task = await processes.start(
            tenant_id, first, name=body.name, proc_def_id=body.proc_def_id, variables=body.variables
        )
    return ProcessView(process=inst, tasks=[task])


@router.get("/{proc_inst_id}", responses=responses(404, 422))
async def get_process(
    proc_inst_id: uuid.UUID, tenant_id: Tenant, processes: ProcessesDep
) -> ProcessView:
    """The process instance and its tasks."""
    inst, items = await processes.get(tenant_id, proc_inst_id)
    return ProcessView(process=inst, tasks=items)


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
    *,
    hub: HubDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(max_length=100_000)] = None,
) -> StreamingResponse:
    """Every task of the process instance, replayed then followed live until all of them
    have ended, as `data-task_event` / `data-task_status` parts of one AI SDK UI message
    stream. `Last-Event-ID` (an id of this stream) resumes exactly after it."""
    cursor = decode_cursor(last_event_id) if last_event_id else {}
    if not await processes.stream_state(tenant_id, proc_inst_id):
        raise ProcessNotFound(proc_inst_id)
    return sse.event_stream(
        sse_process_stream(
            hub,
            processes,
            tenant_id,
            proc_inst_id,
            cursor=cursor,
            heartbeat=settings.sse_heartbeat,
        )
    )

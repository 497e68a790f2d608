"""``/v1/schedules``: work started on time (a process instance or a single task per tick of a
cron expression in a time zone). Making, changing and deleting schedules needs a tenant
admin's key, like the tenant's other configuration (agents, definitions); reading, a member's.
Workers fire them (:mod:`processgpt.runtime.schedules`)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from processgpt.api.deps import AdminCaller, SchedulesDep, ServicesDep, Tenant
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.domain.errors import UnknownAgent
from processgpt.domain.schedule import Cadence, Schedule, ScheduleSpec
from processgpt.protocols.schedules import (
    ScheduleCreate,
    SchedulePage,
    SchedulePatch,
    ScheduleView,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], responses=responses(*AUTHENTICATED))


def view(schedule: Schedule) -> ScheduleView:
    return ScheduleView(
        id=schedule.id,
        name=schedule.name,
        source=schedule.source,  # type: ignore[arg-type]  # the schema's CHECK
        cron=schedule.cadence.cron,
        timezone=schedule.cadence.timezone,
        cycle=schedule.cadence.cycle,
        target=schedule.target,  # type: ignore[arg-type]  # the schema's CHECK
        proc_def_id=schedule.proc_def_id,
        version=schedule.version,
        start_node=schedule.start_node,
        task=schedule.task,
        variables=schedule.variables,
        roles=schedule.roles,
        enabled=schedule.enabled,
        next_run_at=schedule.next_run_at,
        last_run_at=schedule.last_run_at,
        runs=schedule.runs,
        skipped=schedule.skipped,
        last_error=schedule.last_error,
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    )


@router.post("", status_code=201, responses=responses(*WITH_BODY, 403, 409))
async def create_schedule(
    body: ScheduleCreate, caller: AdminCaller, services: ServicesDep, repo: SchedulesDep
) -> ScheduleView:
    """Make a schedule. Its first tick is the first of `cron` (in `timezone`) after now;
    each tick starts one process instance of `process` or queues one task `task`, once
    across all workers. A bad cron expression: 422 `invalid_cron`; an unknown zone: 422
    `unknown_timezone`; an unknown agent: 422 `unknown_agent`; a definition that does not
    exist: 422 `invalid_input`; the name is taken: 409 `name_taken`."""
    cadence = Cadence(cron=body.cron, timezone=body.timezone)
    if body.task is not None:
        agent = body.task.agent_orch
        if agent not in services.known_agents:
            names = await services.tasks.agent_names(caller.tenant_id, services.known_agents)
            if agent not in names:
                raise UnknownAgent(agent, names)
        spec = ScheduleSpec(
            body.name,
            cadence,
            "task",
            task=body.task.model_dump(mode="json", exclude={"run_at", "proc_inst_id"}),
            enabled=body.enabled,
        )
    else:
        assert body.process is not None  # ScheduleCreate allows exactly one
        spec = ScheduleSpec(
            body.name,
            cadence,
            "process",
            proc_def_id=body.process.proc_def_id,
            version=body.process.version,
            variables=body.process.variables,
            roles=body.process.roles,
            enabled=body.enabled,
        )
    schedule = await repo.create(caller.tenant_id, spec)
    log.info(
        "schedule created tenant=%s schedule=%s target=%s next=%s",
        caller.tenant_id,
        schedule.id,
        schedule.target,
        schedule.next_run_at,
    )
    return view(schedule)


@router.get("", responses=responses(422))
async def list_schedules(
    tenant_id: Tenant,
    repo: SchedulesDep,
    after: Annotated[str, Query(max_length=300)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SchedulePage:
    """The tenant's schedules by name, a page at a time."""
    items = await repo.list(tenant_id, after=after, limit=limit)
    return SchedulePage(
        items=[view(s) for s in items], next_after=items[-1].name if len(items) == limit else None
    )


@router.get("/{schedule_id}", responses=responses(404, 422))
async def get_schedule(
    schedule_id: uuid.UUID, tenant_id: Tenant, repo: SchedulesDep
) -> ScheduleView:
    """One schedule (404 `schedule_not_found` for another tenant's)."""
    return view(await repo.get(tenant_id, schedule_id))


@router.patch("/{schedule_id}", responses=responses(*WITH_BODY, 403, 404))
async def patch_schedule(
    schedule_id: uuid.UUID, body: SchedulePatch, caller: AdminCaller, repo: SchedulesDep
) -> ScheduleView:
    """Enable or disable a schedule, or change its cron expression, zone or variables.
    Enabling it again starts from the next tick after now: ticks while it was disabled do
    not run."""
    schedule = await repo.update(
        caller.tenant_id,
        schedule_id,
        enabled=body.enabled,
        cron=body.cron,
        timezone=body.timezone,
        variables=body.variables,
    )
    log.info(
        "schedule changed tenant=%s schedule=%s enabled=%s",
        caller.tenant_id,
        schedule_id,
        schedule.enabled,
    )
    return view(schedule)


@router.delete("/{schedule_id}", status_code=204, responses=responses(403, 404, 422))
async def delete_schedule(
    schedule_id: uuid.UUID, caller: AdminCaller, repo: SchedulesDep
) -> Response:
    """Delete a schedule; work it started goes on. (A timer start event's schedule comes back
    with the next published version that has the event.)"""
    await repo.delete(caller.tenant_id, schedule_id)
    log.info("schedule deleted tenant=%s schedule=%s", caller.tenant_id, schedule_id)
    return Response(status_code=204)

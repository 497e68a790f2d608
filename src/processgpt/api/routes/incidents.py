"""``/v1/processes/{id}/incidents``: where an instance stopped and why, and retrying there."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Path

from processgpt.api.deps import ProcessesDep, ProcessServiceDep, Tenant
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.api.routes.processes import detail
from processgpt.protocols.process_views import IncidentResolve, IncidentView, ProcessDetail

router = APIRouter(
    prefix="/v1/processes/{proc_inst_id}/incidents",
    tags=["processes"],
    responses=responses(*AUTHENTICATED),
)

INCIDENT_ID = Path(min_length=1, max_length=200, description="The incident's id.")


@router.get("", responses=responses(404, 422))
async def list_incidents(
    proc_inst_id: uuid.UUID, tenant_id: Tenant, service: ProcessServiceDep
) -> list[IncidentView]:
    """The instance's open incidents (a resolved one is only in its history): a gateway
    where no flow applies, a condition that failed, an agent step out of attempts, a child
    instance that failed. Its children's open incidents are in `child_incidents` of
    `GET /v1/processes/{id}` (resolved on the child)."""
    inst = await service.get(tenant_id, proc_inst_id)
    return [IncidentView.of(i) for i in inst.incidents]


@router.post("/{incident_id}/resolve", responses=responses(*WITH_BODY, 404, 409))
async def resolve_incident(
    proc_inst_id: uuid.UUID,
    incident_id: Annotated[str, INCIDENT_ID],
    tenant_id: Tenant,
    *,
    processes: ProcessesDep,
    service: ProcessServiceDep,
    body: Annotated[IncidentResolve | None, Body(examples=[{"variables": {"amount": 120}}])] = None,
) -> ProcessDetail:
    """Retry where the incident stopped, after merging `variables`: a failed step runs again
    (a new activation), a gateway decides again. 409 `invalid_state` when the instance has
    no open incident of that id."""
    variables = (body or IncidentResolve()).variables
    inst = await service.resolve_incident(tenant_id, proc_inst_id, incident_id, variables=variables)
    return await detail(processes, tenant_id, inst)

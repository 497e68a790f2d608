"""ProcessGPT's own entry point, ``POST /complete`` (seed 001, section 2): a process
definition's id and input data start an instance. A compatibility route for clients written
for ProcessGPT; new clients use ``POST /v1/processes``, which it calls the same way."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Response

from processgpt.api.deps import (
    GateDep,
    ProcessesDep,
    ProcessServiceDep,
    Tenant,
    idempotency_key_of,
)
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.api.routes.processes import detail
from processgpt.protocols.process_views import CompatComplete, ProcessDetail

router = APIRouter(tags=["compat"], responses=responses(*AUTHENTICATED))


@router.post(
    "/complete",
    status_code=201,
    responses={
        200: {"model": ProcessDetail, "description": "An earlier start with the same key."},
        **responses(*WITH_BODY, 404, 429),
    },
)
async def complete(
    body: Annotated[
        CompatComplete,
        Body(
            openapi_examples={
                "processgpt": {
                    "summary": "As ProcessGPT sends it",
                    "value": {"process_definition_id": "leave_request", "input": {"days": 3}},
                },
                "ours": {
                    "summary": "With this API's names",
                    "value": {"proc_def_id": "leave_request", "variables": {"days": 3}},
                },
            }
        ),
    ],
    tenant_id: Tenant,
    *,
    processes: ProcessesDep,
    service: ProcessServiceDep,
    gate: GateDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> ProcessDetail:
    """**Compatibility** (ProcessGPT's `/complete`): start an instance of the published
    definition `process_definition_id` (or `proc_def_id`) with the input data `input` (or
    `variables`, or `data`) as its variables. The same as `POST /v1/processes` without
    `task`: 201 with the instance, 200 for a repeated `idempotency_key`, 404
    `definition_not_found`."""
    key = idempotency_key_of(body.idempotency_key, idempotency_key)
    async with gate.admit(tenant_id):
        inst, created = await service.start(
            tenant_id,
            body.definition_id,
            version=body.version,
            variables=body.values,
            roles=body.roles,
            name=body.name,
            idempotency_key=key,
        )
    if not created:
        response.status_code = 200
    return await detail(processes, tenant_id, inst)

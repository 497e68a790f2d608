"""``/v1/process-definitions``: publish a definition (ProcessGPT JSON or BPMN) as its next
immutable version; list the definitions, read one with its versions, read a version whole.
Publishing needs a tenant admin's key; reading, a member's."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from processgpt.api.deps import AdminCaller, ProcessDefinitionsDep, Tenant
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.db.process_definitions import DefinitionVersion
from processgpt.domain.errors import InvalidInput
from processgpt.domain.process.publish import FormSpec, compile_definition
from processgpt.protocols.views import (
    DEFINITION_ID_PATTERN,
    ProcessDefinitionPage,
    ProcessDefinitionPublish,
    ProcessDefinitionVersionDetail,
    ProcessDefinitionVersionView,
    ProcessDefinitionView,
    PublishedDefinition,
)

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/process-definitions",
    tags=["process definitions"],
    responses=responses(*AUTHENTICATED),
)

DefinitionId = Annotated[str, Path(pattern=DEFINITION_ID_PATTERN, examples=["leave_request"])]


def _summary(version: DefinitionVersion) -> ProcessDefinitionVersionView:
    return ProcessDefinitionVersionView(
        id=version.id,
        version=version.version,
        name=version.name,
        format=version.format,
        hash=version.hash,
        created_at=version.created_at,
    )


@router.post(
    "",
    status_code=201,
    responses={
        200: {
            "model": PublishedDefinition,
            "description": "The content equals the latest version: that version, unchanged.",
        },
        **responses(*WITH_BODY, 403),
    },
)
async def publish_definition(
    body: ProcessDefinitionPublish,
    caller: AdminCaller,
    repo: ProcessDefinitionsDep,
    response: Response,
) -> PublishedDefinition:
    """Publish the next version of a definition. The definition is read, validated (every
    problem is listed at once: 422 `definition_invalid`, with `details`), its forms (sent in
    `forms` or stored before) and called definitions must exist. Running instances keep the
    version they started on."""
    if (body.definition is None) == (body.bpmn is None):
        raise InvalidInput("send exactly one of `definition` (ProcessGPT JSON) or `bpmn`")
    source = body.definition if body.definition is not None else body.bpmn
    assert source is not None
    forms = {k: FormSpec(fields=v.fields, html=v.html) for k, v in body.forms.items()}
    # Parsing XML and compiling conditions is CPU work: off the event loop.
    compiled = await asyncio.to_thread(
        compile_definition, body.id, source, name=body.name, forms=forms
    )
    version, created = await repo.publish(caller.tenant_id, compiled, forms)
    if created:
        log.info(
            "process definition published tenant=%s id=%s version=%d format=%s",
            caller.tenant_id,
            version.id,
            version.version,
            version.format,
        )
    else:
        response.status_code = 200
    return PublishedDefinition(**_summary(version).model_dump(), created=created)


@router.get("", responses=responses(422))
async def list_definitions(
    tenant_id: Tenant,
    repo: ProcessDefinitionsDep,
    after: Annotated[str, Query(max_length=128)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ProcessDefinitionPage:
    """The tenant's definitions (each at its latest version), by id, a page at a time."""
    items = await repo.latest_versions(tenant_id, after=after, limit=limit)
    return ProcessDefinitionPage(
        items=[_summary(v) for v in items],
        next_after=items[-1].id if len(items) == limit else None,
    )


@router.get("/{definition_id}", responses=responses(404, 422))
async def get_definition(
    definition_id: DefinitionId, tenant_id: Tenant, repo: ProcessDefinitionsDep
) -> ProcessDefinitionView:
    """A definition and all its versions, oldest first."""
    versions = await repo.versions(tenant_id, definition_id)
    return ProcessDefinitionView(
        id=definition_id,
        name=versions[-1].name,
        latest_version=versions[-1].version,
        versions=[_summary(v) for v in versions],
    )


@router.get("/{definition_id}/versions/{version}", responses=responses(404, 422))
async def get_definition_version(
    definition_id: DefinitionId,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    tenant_id: Tenant,
    repo: ProcessDefinitionsDep,
) -> ProcessDefinitionVersionDetail:
    """One version whole: its compiled graph and its source as published."""
    found = await repo.get(tenant_id, definition_id, version)
    source: object = found.source
    if found.format == "processgpt_json" and found.source:
        source = json.loads(found.source)
    return ProcessDefinitionVersionDetail(
        **_summary(found).model_dump(), graph=found.definition or {}, source=source
    )

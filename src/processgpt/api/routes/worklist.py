"""``/v1/worklist``: the open work items of people (human process steps, and agents' drafts
waiting for a person), and ``POST /v1/tasks/{id}/complete``, how a person completes one."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query

from processgpt.api.cursors import decode_cursor, encode_cursor
from processgpt.api.deps import ProcessServiceDep, Tenant, idempotency_key_of
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.domain.task import Task
from processgpt.protocols.process_views import TaskComplete
from processgpt.protocols.views import TaskPage

router = APIRouter(prefix="/v1/worklist", tags=["worklist"], responses=responses(*AUTHENTICATED))
complete_router = APIRouter(
    prefix="/v1/tasks", tags=["worklist"], responses=responses(*AUTHENTICATED)
)

_IDEMPOTENCY_KEY = Header(
    min_length=1,
    max_length=200,
    description="Same key, same answer: completing again with it returns the task (not 409).",
)


@router.get("", responses=responses(422))
async def worklist(
    tenant_id: Tenant,
    service: ProcessServiceDep,
    *,
    user: Annotated[str | None, Query(max_length=2000, description="assigned to")] = None,
    role: Annotated[str | None, Query(max_length=200, description="of the role")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TaskPage:
    """The tenant's open human work items (status TODO), newest first, a page at a time
    (pass `next_cursor` as `cursor`): those assigned to `user`, of `role`, or all. Each
    has its form (`tool`), its input, an agent's `draft` when there is one, and `due_at`."""
    before = decode_cursor(cursor) if cursor else None
    items = await service.worklist(tenant_id, user=user, role=role, limit=limit, before=before)
    last = items[-1] if len(items) == limit else None
    next_cursor = encode_cursor(last.created_at, last.id) if last is not None else None
    return TaskPage(items=items, next_cursor=next_cursor)


@complete_router.post("/{task_id}/complete", responses=responses(*WITH_BODY, 404, 409))
async def complete_task(
    task_id: uuid.UUID,
    body: TaskComplete,
    tenant_id: Tenant,
    service: ProcessServiceDep,
    idempotency_key: Annotated[str | None, _IDEMPOTENCY_KEY] = None,
) -> Task:
    """Complete a person's work item (TODO) with `output` (the form's values) and advance
    its process in the same transaction. 409 `invalid_state` when the task is not open
    (unless completed before with the same idempotency key: then the same answer); 422
    when `output` does not fit the task's form (nothing changes)."""
    key = idempotency_key_of(body.idempotency_key, idempotency_key)
    return await service.complete_task(tenant_id, task_id, body.output, idempotency_key=key)

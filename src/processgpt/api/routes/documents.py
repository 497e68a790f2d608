"""``/v1/documents``: documents steps stored as their results (seed 001's ``documents``).

A document is metadata and text, optionally with one of the tenant's files (its bytes through
``/v1/files/{id}/content``, or a signed link). Agents store documents as their task's result
(``event_queue.save_document``, the ``llm`` agent's ``send_file`` with ``document_title``);
people and systems store them here, for a task (a human step) or a process instance. Lists show
an excerpt of the content; ``GET /v1/documents/{id}`` the whole text.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from processgpt.api.cursors import decode_cursor, encode_cursor
from processgpt.api.deps import Caller, FilesDep, Tenant
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.db.documents import NewDocument
from processgpt.domain.documents import Document
from processgpt.protocols.documents import DocumentCreate, DocumentPage
from processgpt.protocols.views import ErrorBody

router = APIRouter(prefix="/v1/documents", tags=["documents"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "`document_not_found`: no such document."}
}
_REFERENCES: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorBody,
        "description": "`task_not_found` / `process_not_found` / `file_not_found`: a reference "
        "that is not the tenant's (or an instance that is not the task's).",
    }
}


@router.post(
    "", status_code=201, responses={**responses(*AUTHENTICATED, *WITH_BODY), **_REFERENCES}
)
async def create_document(body: DocumentCreate, caller: Caller, files: FilesDep) -> Document:
    """Store a document: the result of a step (`task_id`; a person's step, or a system
    reporting for one), or a document of a process instance (`proc_inst_id`). Attach a file by
    uploading it first (`POST /v1/files`) and naming its `file_id`."""
    new = NewDocument(
        title=body.title,
        content=body.content,
        file_id=body.file_id,
        metadata=body.metadata,
        created_by=caller.subject,
    )
    return await files.documents.insert(
        caller.tenant_id, new, task_id=body.task_id, proc_inst_id=body.proc_inst_id
    )


@router.get("", responses=responses(*AUTHENTICATED, 422))
async def list_documents(
    tenant_id: Tenant,
    files: FilesDep,
    *,
    task_id: uuid.UUID | None = None,
    proc_inst_id: uuid.UUID | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DocumentPage:
    """The tenant's documents, newest first, a page at a time; those of one task or one process
    instance (all its steps) with `task_id` / `proc_inst_id`. Items carry an `excerpt` of the
    content; the whole text is `GET /v1/documents/{id}`."""
    items = await files.documents.list(
        tenant_id,
        task_id=task_id,
        proc_inst_id=proc_inst_id,
        before=decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    last = items[-1] if len(items) == limit else None
    return DocumentPage(
        items=items,
        next_cursor=encode_cursor(last.created_at, last.id) if last is not None else None,
    )


@router.get("/{document_id}", responses={**responses(*AUTHENTICATED, 422), **_NOT_FOUND})
async def get_document(document_id: uuid.UUID, tenant_id: Tenant, files: FilesDep) -> Document:
    """A document with its whole content and its file's metadata."""
    return await files.documents.get(tenant_id, document_id)


@router.delete(
    "/{document_id}", status_code=204, responses={**responses(*AUTHENTICATED), **_NOT_FOUND}
)
async def delete_document(document_id: uuid.UUID, tenant_id: Tenant, files: FilesDep) -> Response:
    """Delete a document. Its file stays (delete it with `DELETE /v1/files/{id}`)."""
    await files.documents.delete(tenant_id, document_id)
    return Response(status_code=204)

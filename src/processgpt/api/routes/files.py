"""``/v1/files``: upload, list, read, download, delete files, and make signed links.

Downloads (``GET /v1/files/{id}/content``) are always attachments with
``X-Content-Type-Options: nosniff`` and a sandboxing ``Content-Security-Policy``: a tenant's
file never runs in the console's origin, whatever it holds. The same route serves signed
links: with ``expires`` and ``signature`` it needs no API key (403 ``link_invalid`` /
``link_expired`` when they do not hold).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from processgpt.api.auth import presented_credential
from processgpt.api.cursors import decode_cursor, encode_cursor
from processgpt.api.deps import AuthenticatorDep, Caller, FilesDep, Tenant
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.api.uploads import MultipartFile
from processgpt.domain.errors import FileTooLarge, InvalidInput
from processgpt.domain.files import FileInfo, content_disposition
from processgpt.files.service import Owner
from processgpt.protocols.files import FileLink, FilePage, LinkRequest
from processgpt.protocols.views import ErrorBody

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/files", tags=["files"])

MULTIPART_OVERHEAD = 64 * 1024
"""Bytes of a multipart body besides the file (boundaries, headers, small fields)."""

_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorBody,
        "description": "`link_invalid` / `link_expired`: a signed link that does not hold.",
    },
    404: {"model": ErrorBody, "description": "`file_not_found`: no such file for the tenant."},
}

_CHAT_ID = Query(max_length=128, pattern=r"^[A-Za-z0-9_.:-]{1,128}$")


@router.post(
    "",
    status_code=201,
    responses={
        **responses(*AUTHENTICATED, 422),
        413: {"model": ErrorBody, "description": "`file_too_large`: over the size limit."},
        415: {
            "model": ErrorBody,
            "description": "`unsupported_media_type`: a type not accepted, or bytes that "
            "contradict the declared type.",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def upload_file(
    request: Request,
    caller: Caller,
    *,
    files: FilesDep,
    task_id: uuid.UUID | None = None,
    chat_id: Annotated[str | None, _CHAT_ID] = None,
    proc_inst_id: uuid.UUID | None = None,
) -> FileInfo:
    """Upload a file (`multipart/form-data`, the file in a part named `file`). Its bytes are
    streamed to storage as they arrive; its content type is checked against its first bytes.
    `task_id` / `chat_id` / `proc_inst_id` attach it to one of the tenant's tasks, chats or
    process instances. To hand it to a new task, name its id in the task's `input.files`."""
    length = request.headers.get("content-length")
    limit = files.max_bytes + MULTIPART_OVERHEAD
    if length is not None and length.isdigit() and int(length) > limit:
        raise FileTooLarge(f"files are limited to {files.max_bytes} bytes")
    body = MultipartFile(request, max_body=limit)
    await body.start()
    owner = Owner(
        task_id=task_id,
        chat_id=chat_id,
        proc_inst_id=proc_inst_id,
        created_by=caller.subject,
    )
    return await files.upload(
        caller.tenant_id, body.filename, body.content_type, body.chunks(), owner
    )


@router.get("", responses=responses(*AUTHENTICATED, 422))
async def list_files(
    tenant_id: Tenant,
    files: FilesDep,
    *,
    task_id: uuid.UUID | None = None,
    chat_id: Annotated[str | None, _CHAT_ID] = None,
    proc_inst_id: uuid.UUID | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> FilePage:
    """The tenant's files, newest first, a page at a time; filtered by what they belong to."""
    items = await files.repo.list_files(
        tenant_id,
        task_id=task_id,
        chat_id=chat_id,
        proc_inst_id=proc_inst_id,
        before=decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    last = items[-1] if len(items) == limit else None
    return FilePage(
        items=items,
        next_cursor=encode_cursor(last.created_at, last.id) if last is not None else None,
    )


@router.get("/{file_id}", responses={**responses(*AUTHENTICATED, 422), **_FILE_RESPONSES})
async def get_file(file_id: uuid.UUID, tenant_id: Tenant, files: FilesDep) -> FileInfo:
    """A file's metadata (its bytes: `GET /v1/files/{id}/content`)."""
    return await files.info(tenant_id, file_id)


@router.delete(
    "/{file_id}", status_code=204, responses={**responses(*AUTHENTICATED), **_FILE_RESPONSES}
)
async def delete_file(file_id: uuid.UUID, tenant_id: Tenant, files: FilesDep) -> Response:
    """Delete a file: at once unreadable (signed links included), then its bytes removed."""
    await files.delete(tenant_id, file_id)
    return Response(status_code=204)


@router.post(
    "/{file_id}/link", responses={**responses(*AUTHENTICATED, *WITH_BODY), **_FILE_RESPONSES}
)
async def link_file(
    file_id: uuid.UUID,
    request: Request,
    tenant_id: Tenant,
    files: FilesDep,
    body: LinkRequest | None = None,
) -> FileLink:
    """A signed, short-lived URL that downloads the file without an API key (for a browser,
    an `<a href>`, a person without a key). Anyone holding it can download until it expires."""
    await files.info(tenant_id, file_id)  # 404 for another tenant's
    link = files.link(tenant_id, file_id, str(request.base_url), (body or LinkRequest()).seconds)
    return FileLink(url=link.url, expires_at=link.expires_at)


_bearer = HTTPBearer(auto_error=False, scheme_name="bearer")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey")


@router.get(
    "/{file_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes."},
        **responses(*AUTHENTICATED, 422),
        **_FILE_RESPONSES,
    },
)
async def file_content(
    file_id: uuid.UUID,
    request: Request,
    *,
    files: FilesDep,
    auth: AuthenticatorDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
    expires: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    signature: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> StreamingResponse:
    """The file's bytes, as an attachment. With an API key (the tenant's files), or with the
    `expires` and `signature` of a signed link (`POST /v1/files/{id}/link`) and no key."""
    if signature is not None or expires is not None:
        if signature is None or expires is None:
            raise InvalidInput("a signed link needs both expires and signature")
        info, chunks = await files.open_link(file_id, expires, signature)
        cache = "private, max-age=0"
    else:
        authorization = f"Bearer {bearer.credentials}" if bearer is not None else None
        principal = await auth.authenticate(
            presented_credential(authorization, api_key), scope=request.scope
        )
        info, chunks = await files.open(principal.tenant_id, file_id)
        cache = "private, no-store"
    return download(info, chunks, cache)


def download(info: FileInfo, chunks: AsyncIterator[bytes], cache: str) -> StreamingResponse:
    """The response that hands ``info``'s bytes over as an attachment that never renders."""
    return StreamingResponse(
        chunks,
        media_type=info.content_type,
        headers={
            "content-length": str(info.size),
            "content-disposition": content_disposition(info.name),
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; sandbox",
            "cache-control": cache,
            "etag": f'"{info.sha256}"',
        },
    )

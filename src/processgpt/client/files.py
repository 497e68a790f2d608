"""The ``/v1/files`` calls of :class:`~processgpt.client.ProcessGPTClient`. Uploads and
downloads stream: a file is never held whole in memory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any, Protocol

import httpx

from processgpt.client.transport import error_of
from processgpt.domain.files import FileInfo
from processgpt.protocols.files import FileLink, FilePage


class _Requests(Protocol):
    _http: httpx.AsyncClient

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response: ...


class FileCalls:
    """Files of the key's tenant. Errors raise :class:`~processgpt.client.ApiError`
    (``file_not_found``, ``file_too_large``, ``unsupported_media_type``, …)."""

    async def upload_file(
        self: _Requests,
        source: str | Path | bytes | IO[bytes],
        *,
        name: str | None = None,
        content_type: str | None = None,
        task_id: uuid.UUID | str | None = None,
        chat_id: str | None = None,
    ) -> FileInfo:
        """Upload a file (a path, bytes, or a binary file object, sent a chunk at a time).
        ``content_type``: what the file is (the server checks it against the bytes; unset:
        decided from the name and the bytes). ``task_id`` / ``chat_id`` attach it."""
        params = {
            k: str(v) for k, v in (("task_id", task_id), ("chat_id", chat_id)) if v is not None
        }
        if isinstance(source, str | Path):
            path = Path(source)
            # httpx reads the file a chunk at a time while it sends (in this thread: a
            # local file's reads are short).
            with path.open("rb") as handle:  # noqa: ASYNC230
                return await _upload(self, handle, name or path.name, content_type, params)
        return await _upload(self, source, name or "file", content_type, params)

    async def get_file(self: _Requests, file_id: uuid.UUID | str) -> FileInfo:
        response = await self._request("GET", f"/v1/files/{file_id}")
        return FileInfo.model_validate(response.json())

    async def list_files(
        self: _Requests,
        *,
        task_id: uuid.UUID | str | None = None,
        chat_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> FilePage:
        """A page of the tenant's files, newest first (pass ``next_cursor`` on)."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("task_id", task_id), ("chat_id", chat_id), ("cursor", cursor)):
            if value is not None:
                params[key] = str(value)
        response = await self._request("GET", "/v1/files", params=params)
        return FilePage.model_validate(response.json())

    async def download_file(self: _Requests, file_id: uuid.UUID | str) -> AsyncIterator[bytes]:
        """The file's bytes, a chunk at a time."""
        async with self._http.stream("GET", f"/v1/files/{file_id}/content") as response:
            if response.status_code >= 400:
                await response.aread()
                raise error_of(response)
            async for chunk in response.aiter_bytes():
                yield chunk

    async def delete_file(self: _Requests, file_id: uuid.UUID | str) -> None:
        await self._request("DELETE", f"/v1/files/{file_id}")

    async def file_link(
        self: _Requests, file_id: uuid.UUID | str, *, seconds: int | None = None
    ) -> FileLink:
        """A signed URL that downloads the file without an API key until it expires."""
        body = {"seconds": seconds} if seconds is not None else None
        response = await self._request("POST", f"/v1/files/{file_id}/link", json=body)
        return FileLink.model_validate(response.json())


async def _upload(
    client: _Requests,
    content: bytes | IO[bytes],
    name: str,
    content_type: str | None,
    params: dict[str, str],
) -> FileInfo:
    part = (name, content, content_type) if content_type else (name, content)
    response = await client._http.post("/v1/files", files={"file": part}, params=params)
    if response.status_code >= 400:
        raise error_of(response)
    return FileInfo.model_validate(response.json())

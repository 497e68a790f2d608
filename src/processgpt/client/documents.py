"""The ``/v1/documents`` calls of :class:`~processgpt.client.ProcessGPTClient`."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import httpx

from processgpt.domain.documents import Document
from processgpt.protocols.documents import DocumentCreate, DocumentPage


class _Requests(Protocol):
    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response: ...


class DocumentCalls:
    """Documents of the key's tenant (steps' stored results). Errors raise
    :class:`~processgpt.client.ApiError` (``document_not_found``, ``task_not_found``, …)."""

    async def save_document(
        self: _Requests,
        title: str,
        content: str = "",
        *,
        task_id: uuid.UUID | str | None = None,
        proc_inst_id: uuid.UUID | str | None = None,
        file_id: uuid.UUID | str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Document:
        """Store a document for a task (a step's result) or a process instance; ``file_id``:
        a file uploaded first (``upload_file``)."""
        body = DocumentCreate.model_validate(
            {
                "title": title,
                "content": content,
                "task_id": task_id,
                "proc_inst_id": proc_inst_id,
                "file_id": file_id,
                "metadata": metadata or {},
            }
        )
        response = await self._request(
            "POST", "/v1/documents", json=body.model_dump(mode="json", exclude_none=True)
        )
        return Document.model_validate(response.json())

    async def list_documents(
        self: _Requests,
        *,
        task_id: uuid.UUID | str | None = None,
        proc_inst_id: uuid.UUID | str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> DocumentPage:
        """A page of the tenant's documents, newest first, with excerpts (pass
        ``next_cursor`` on)."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (
            ("task_id", task_id),
            ("proc_inst_id", proc_inst_id),
            ("cursor", cursor),
        ):
            if value is not None:
                params[key] = str(value)
        response = await self._request("GET", "/v1/documents", params=params)
        return DocumentPage.model_validate(response.json())

    async def get_document(self: _Requests, document_id: uuid.UUID | str) -> Document:
        """A document with its whole content."""
        response = await self._request("GET", f"/v1/documents/{document_id}")
        return Document.model_validate(response.json())

    async def delete_document(self: _Requests, document_id: uuid.UUID | str) -> None:
        await self._request("DELETE", f"/v1/documents/{document_id}")

"""Stored documents (``documents``, seed 001): a step's result or text kept for a process.
Every read and write is scoped to a tenant; a document names only the tenant's tasks,
process instances and files (refused otherwise, nothing written)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.domain.documents import EXCERPT_CHARS, Document, DocumentSummary
from processgpt.domain.errors import (
    DocumentNotFound,
    FileNotFound,
    InvalidInput,
    LeaseLost,
    ProcessNotFound,
    TaskNotFound,
)


@dataclass(frozen=True)
class NewDocument:
    """A document to store: its title, text, file and metadata, and who stores it."""

    title: str
    content: str = ""
    file_id: uuid.UUID | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_by: str | None = None

    def args(self) -> tuple[Any, ...]:
        return self.title, self.content, self.file_id, self.metadata, self.created_by


def _schema_error(exc: Exception) -> InvalidInput:
    return InvalidInput(f"document refused by the schema: {exc.__class__.__name__}")


class DocumentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(
        self,
        tenant_id: str,
        new: NewDocument,
        *,
        task_id: uuid.UUID | None = None,
        proc_inst_id: uuid.UUID | None = None,
    ) -> Document:
        """Store a document of the tenant's task ``task_id`` (its instance and activity are the
        task's) or process instance ``proc_inst_id``, or of neither. :class:`TaskNotFound`,
        :class:`ProcessNotFound`, :class:`FileNotFound` for a reference that is not the
        tenant's (or an instance that is not the task's); nothing is written then."""
        try:
            row = await self.db.fetchrow(
                QUERIES["insert_document"], tenant_id, proc_inst_id, task_id, *new.args()
            )
        except (asyncpg.exceptions.CheckViolationError, asyncpg.exceptions.DataError) as exc:
            raise _schema_error(exc) from None
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise InvalidInput(f"tenant {tenant_id!r} does not exist") from None
        assert row is not None  # the checks always make a row
        if not row["task_ok"]:
            raise TaskNotFound(task_id)
        if not row["inst_ok"]:
            raise ProcessNotFound(proc_inst_id)
        if not row["file_ok"]:
            raise FileNotFound(new.file_id)
        return await self.get(tenant_id, row["id"])

    async def insert_for_step(
        self, tenant_id: str, task_id: uuid.UUID, fence: int, new: NewDocument
    ) -> Document:
        """Store a document as the result of the attempt at ``task_id`` that claimed it with
        ``fence``. :class:`LeaseLost` when that attempt no longer holds the task (nothing is
        written), :class:`FileNotFound` for a file that is not the tenant's."""
        try:
            row = await self.db.fetchrow(
                QUERIES["insert_step_document"], tenant_id, task_id, fence, *new.args()
            )
        except (asyncpg.exceptions.CheckViolationError, asyncpg.exceptions.DataError) as exc:
            raise _schema_error(exc) from None
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise FileNotFound(new.file_id) from None  # the file was deleted meanwhile
        if row is None:
            if new.file_id is not None and not await self._file_is_tenants(tenant_id, new.file_id):
                raise FileNotFound(new.file_id)
            raise LeaseLost(task_id)
        return await self.get(tenant_id, row["id"])

    async def _file_is_tenants(self, tenant_id: str, file_id: uuid.UUID) -> bool:
        row = await self.db.fetchrow(QUERIES["get_file"], file_id, tenant_id)
        return row is not None

    async def get(self, tenant_id: str, document_id: uuid.UUID) -> Document:
        row = await self.db.fetchrow(QUERIES["get_document"], document_id, tenant_id)
        if row is None:
            raise DocumentNotFound(document_id)
        return Document.model_validate(dict(row))

    async def list(
        self,
        tenant_id: str,
        *,
        task_id: uuid.UUID | None = None,
        proc_inst_id: uuid.UUID | None = None,
        before: tuple[datetime, uuid.UUID] | None = None,
        limit: int = 50,
    ) -> list[DocumentSummary]:
        """The tenant's documents, newest first, without their content (an excerpt)."""
        rows = await self.db.fetch(
            QUERIES["list_documents"],
            tenant_id,
            proc_inst_id,
            task_id,
            before[0] if before else None,
            before[1] if before else None,
            limit,
            EXCERPT_CHARS,
        )
        return [DocumentSummary.model_validate(dict(r)) for r in rows]

    async def delete(self, tenant_id: str, document_id: uuid.UUID) -> None:
        """Delete the document (its file, if any, is kept: delete it through ``/v1/files``)."""
        if await self.db.fetchrow(QUERIES["delete_document"], document_id, tenant_id) is None:
            raise DocumentNotFound(document_id)

"""Files' metadata (``files``; documents are in :mod:`processgpt.db.documents`); the bytes
are in a storage backend (:mod:`processgpt.files`). Every read and write is scoped to a
tenant, except :meth:`FileRepository.get_for_link`, whose caller has checked a signature instead."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.db.tasks import TaskRepository
from processgpt.domain.errors import FileNotFound, InvalidInput
from processgpt.domain.files import FileInfo
from processgpt.domain.task import Task, TaskSubmission

_INFO_FIELDS = frozenset(FileInfo.model_fields)


@dataclass(frozen=True)
class StoredFile:
    """A file's row: what callers see (:attr:`info`) and where its bytes are."""

    info: FileInfo
    storage: str
    storage_key: str


@dataclass(frozen=True)
class NewFile:
    """The row of a file whose bytes are stored."""

    id: uuid.UUID
    tenant_id: str
    name: str
    content_type: str
    size: int
    sha256: str
    storage: str
    storage_key: str
    task_id: uuid.UUID | None = None
    chat_id: str | None = None
    proc_inst_id: uuid.UUID | None = None
    created_by: str | None = None


def _stored(row: asyncpg.Record) -> StoredFile:
    info = FileInfo.model_validate({k: v for k, v in row.items() if k in _INFO_FIELDS})
    return StoredFile(info, row["storage"], row["storage_key"])


class FileRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, new: NewFile) -> StoredFile:
        """Record a stored file. :class:`InvalidInput` when its task or chat is not one of
        the tenant's (nothing is written)."""
        try:
            row = await self.db.fetchrow(
                QUERIES["insert_file"],
                new.id,
                new.tenant_id,
                new.name,
                new.content_type,
                new.size,
                new.sha256,
                new.storage,
                new.storage_key,
                new.task_id,
                new.chat_id,
                new.proc_inst_id,
                new.created_by,
            )
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise InvalidInput(f"tenant {new.tenant_id!r} does not exist") from None
        except (asyncpg.exceptions.CheckViolationError, asyncpg.exceptions.DataError) as exc:
            raise InvalidInput(f"file refused by the schema: {exc.__class__.__name__}") from None
        if row is None:
            what = "task_id" if new.task_id is not None else "chat_id"
            raise InvalidInput(f"{what} names no {what[:-3]} of the tenant", field=what)
        return _stored(row)

    async def get(self, tenant_id: str, file_id: uuid.UUID) -> StoredFile:
        row = await self.db.fetchrow(QUERIES["get_file"], file_id, tenant_id)
        if row is None:
            raise FileNotFound(file_id)
        return _stored(row)

    async def get_for_link(self, file_id: uuid.UUID) -> StoredFile:
        """The file whatever its tenant: only for a signed link, whose signature binds the
        file to its tenant and is checked by the caller before anything is shown."""
        row = await self.db.fetchrow(QUERIES["get_file_any_tenant"], file_id)
        if row is None:
            raise FileNotFound(file_id)
        return _stored(row)

    async def list_files(
        self,
        tenant_id: str,
        *,
        task_id: uuid.UUID | None = None,
        chat_id: str | None = None,
        proc_inst_id: uuid.UUID | None = None,
        before: tuple[datetime, uuid.UUID] | None = None,
        limit: int = 50,
    ) -> list[FileInfo]:
        rows = await self.db.fetch(
            QUERIES["list_files"],
            tenant_id,
            task_id,
            chat_id,
            proc_inst_id,
            before[0] if before else None,
            before[1] if before else None,
            limit,
        )
        return [_stored(r).info for r in rows]

    async def by_ids(self, tenant_id: str, ids: list[uuid.UUID]) -> list[FileInfo]:
        """The tenant's files among ``ids`` (others are left out), oldest first."""
        if not ids:
            return []
        rows = await self.db.fetch(QUERIES["files_by_ids"], tenant_id, ids)
        return [_stored(r).info for r in rows]

    async def delete(self, tenant_id: str, file_id: uuid.UUID) -> StoredFile:
        """Delete the row (its bytes are the caller's to delete, after this commits)."""
        row = await self.db.fetchrow(QUERIES["delete_file"], file_id, tenant_id)
        if row is None:
            raise FileNotFound(file_id)
        return _stored(row)

    async def existing_keys(self, storage: str, keys: list[str]) -> set[str]:
        """Which of ``keys`` (of the backend ``storage``) a file row names, any tenant's."""
        rows = await self.db.fetch(QUERIES["existing_storage_keys"], storage, keys)
        return {r["storage_key"] for r in rows}

    async def submit_task_with_files(
        self,
        tasks: TaskRepository,
        tenant_id: str,
        sub: TaskSubmission,
        file_ids: list[uuid.UUID],
        *,
        known_agents: frozenset[str],
    ) -> tuple[Task, bool]:
        """Submit a task that names ``file_ids`` (its ``input.files``) in one transaction: the
        files must all be the tenant's (:class:`FileNotFound` for the first that is not;
        nothing is written), are locked against deletion until the task is written, and
        those without an owner become the task's."""
        async with self.db.transaction() as conn:
            found = {
                r["id"] for r in await conn.fetch(QUERIES["lock_files_by_ids"], tenant_id, file_ids)
            }
            for file_id in file_ids:
                if file_id not in found:
                    raise FileNotFound(file_id)
            task, created = await tasks.submit(tenant_id, sub, known_agents=known_agents, conn=conn)
            if created:
                await conn.execute(QUERIES["attach_files_to_task"], tenant_id, file_ids, task.id)
        return task, created

    async def check_owned(self, tenant_id: str, file_ids: list[uuid.UUID]) -> None:
        """:class:`FileNotFound` for the first of ``file_ids`` that is not the tenant's."""
        found = {f.id for f in await self.by_ids(tenant_id, file_ids)}
        for file_id in file_ids:
            if file_id not in found:
                raise FileNotFound(file_id)

"""What an agent may do with files while it runs a task: list and read the files its task
was given, send files to the user, and store documents as its task's result.

A task is given files by naming them in ``input.files`` (checked to be the tenant's when the
task is submitted), by a file uploaded with the task's id, or, in a chat, by the message's
attachments. An agent reads those and nothing else of its tenant; the files it sends belong
to its task (and its chat and process instance), made by ``agent:<orchestrator>``.

Executors running in a thread of their own (blocking executors) may call these too: the
database and storage work runs on the worker's event loop.
"""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from processgpt.db.documents import NewDocument
from processgpt.domain.documents import Document
from processgpt.domain.errors import FileNotFound, LeaseLost
from processgpt.domain.files import FileInfo, named_file_ids
from processgpt.files.service import FileService, Owner

T = TypeVar("T")


class TaskFiles:
    """The files of one task, for its executor."""

    def __init__(
        self,
        service: FileService,
        loop: asyncio.AbstractEventLoop,
        *,
        tenant_id: str,
        task_id: uuid.UUID,
        agent: str,
        task_input: Callable[[], Any],
        proc_inst_id: uuid.UUID | None = None,
        fence: int | None = None,
    ) -> None:
        """``task_input``: returns the task's input (read when first needed: most tasks
        never use their files). ``fence``: the attempt's claim, which fences the documents
        it stores (without it, :meth:`save_document` is refused)."""
        self._service = service
        self._loop = loop
        self.tenant_id = tenant_id
        self.task_id = task_id
        self.agent = agent
        self._input = task_input
        self.proc_inst_id = proc_inst_id
        self.fence = fence

    @property
    def named(self) -> list[uuid.UUID]:
        """The file ids the task's input names."""
        return named_file_ids(self._input())

    @property
    def chat_id(self) -> str | None:
        task_input = self._input()
        chat_id = task_input.get("chat_id") if isinstance(task_input, dict) else None
        return chat_id if isinstance(chat_id, str) else None

    async def _run(self, work: Coroutine[Any, Any, T]) -> T:
        """``work`` on the worker's loop (where the database pool lives)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - always called from a coroutine
            running = None
        if running is self._loop:
            return await work
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        return await asyncio.wrap_future(future)

    async def list(self) -> builtins.list[FileInfo]:
        """The files the task was given: those its input names, in the input's order (a
        chat message's order), then those uploaded to it, oldest first. Files deleted
        meanwhile are left out."""
        return await self._run(self._list())

    async def _list(self) -> builtins.list[FileInfo]:
        order = {file_id: index for index, file_id in enumerate(self.named)}
        named = await self._service.repo.by_ids(self.tenant_id, list(order))
        named.sort(key=lambda info: order[info.id])
        owned = await self._service.repo.list_files(self.tenant_id, task_id=self.task_id, limit=100)
        seen = {f.id for f in named}
        return named + [f for f in reversed(owned) if f.id not in seen]

    async def read(self, file_id: uuid.UUID | str) -> bytes:
        """The bytes of one of :meth:`list`'s files (:class:`FileNotFound` for any other)."""
        wanted = uuid.UUID(str(file_id))
        return await self._run(self._read(wanted))

    async def _read(self, file_id: uuid.UUID) -> bytes:
        if file_id not in named_file_ids(self._input()):
            info = await self._service.info(self.tenant_id, file_id)
            if info.task_id != self.task_id:
                raise FileNotFound(file_id)
        return await self._service.read_bytes(self.tenant_id, file_id)

    @property
    def author(self) -> str:
        """What the files and documents the agent makes say made them."""
        return f"agent:{self.agent}"[:200]

    async def send(self, name: str, data: bytes, content_type: str | None = None) -> FileInfo:
        """Store a file the agent made, as its task's (the same checks as an upload: size
        limit, accepted content types)."""
        owner = Owner(
            task_id=self.task_id,
            chat_id=self.chat_id,
            proc_inst_id=self.proc_inst_id,
            created_by=self.author,
        )
        return await self._run(
            self._service.upload_bytes(self.tenant_id, name, data, content_type, owner)
        )

    async def save_document(
        self,
        title: str,
        content: str = "",
        *,
        file_id: uuid.UUID | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Document:
        """Store a document as the task's result (its process instance and activity are the
        task's), while this attempt holds the task (:class:`LeaseLost` otherwise: nothing is
        written). ``file_id``: one of the tenant's files, e.g. one :meth:`send` stored."""
        if self.fence is None:
            raise LeaseLost(self.task_id)
        new = NewDocument(
            title=title,
            content=content,
            file_id=file_id,
            metadata=metadata or {},
            created_by=self.author,
        )
        return await self._run(
            self._service.documents.insert_for_step(self.tenant_id, self.task_id, self.fence, new)
        )

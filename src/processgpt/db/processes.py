"""Process instances (``bpm_proc_inst``) and the tasks that belong to them."""

from __future__ import annotations

import uuid
from typing import Any

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.db.tasks import TaskRepository, to_task
from processgpt.domain.errors import InvalidInput, ProcessNotFound
from processgpt.domain.task import Task, TaskSubmission


class ProcessRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tasks = TaskRepository(db)

    async def start(
        self,
        tenant_id: str,
        first_task: TaskSubmission,
        *,
        name: str = "",
        proc_def_id: str | None = None,
        variables: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], Task]:
        """Create a RUNNING process instance and its first task in one transaction."""
        async with self.db.transaction() as conn:
            version = None
            if proc_def_id is not None:
                version = await conn.fetchval(QUERIES["proc_def_version"], tenant_id, proc_def_id)
                if version is None:
                    raise InvalidInput(
                        f"process definition {proc_def_id!r} not found", field="proc_def_id"
                    )
            inst = dict(
                await conn.fetchrow(
                    QUERIES["insert_proc_inst"],
                    tenant_id,
                    proc_def_id,
                    version,
                    name,
                    variables or {},
                )
            )
            sub = first_task.model_copy(update={"proc_inst_id": inst["proc_inst_id"]})
            task, _ = await self.tasks.submit(tenant_id, sub, conn=conn)
        return inst, task

    async def get(
        self, tenant_id: str, proc_inst_id: uuid.UUID
    ) -> tuple[dict[str, Any], list[Task]]:
        row = await self.db.fetchrow(QUERIES["get_proc_inst"], proc_inst_id, tenant_id)
        if row is None:
            raise ProcessNotFound(proc_inst_id)
        tasks = await self.db.fetch(QUERIES["list_proc_inst_tasks"], proc_inst_id, tenant_id)
        return dict(row), [to_task(t) for t in tasks]

    async def stream_state(self, tenant_id: str, proc_inst_id: uuid.UUID) -> list[dict[str, Any]]:
        """The instance's status (``proc_status``, ``driven``: whether the engine advances it,
        ``current_activity_ids``) and each of its tasks' state, in creation order, in one
        read. Empty: no such instance for the tenant; one row with ``id`` None: an instance
        without tasks."""
        rows = await self.db.fetch(QUERIES["process_stream_state"], proc_inst_id, tenant_id)
        return [dict(r) for r in rows]

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from processgpt.agents.a2a_adapter import A2ATaskRunner
from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import RetryPolicy
from processgpt.runtime.worker import Worker, WorkerOptions

StartWorker = Callable[..., Any]


@pytest.fixture
async def start_worker(db: Database) -> AsyncIterator[StartWorker]:
    """Start an in-process worker: ``await start_worker({"agent": executor}, **options)``."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(executors: dict[str, Any], **options: Any) -> Worker:
        options.setdefault("poll_interval", 0.2)
        options.setdefault("lease_seconds", 5.0)
        options.setdefault("retry", RetryPolicy(base_delay=0.1, max_delay=1.0))
        runners = {name: A2ATaskRunner(ex) for name, ex in executors.items()}
        worker = Worker(db, runners, WorkerOptions(**options))
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.started.wait(), 10)
        running.append((worker, task))
        return worker

    yield start
    for worker, _task in running:
        worker.stop()
    for _worker, task in running:
        await asyncio.wait_for(task, 30)


@pytest.fixture
def repo(db: Database) -> TaskRepository:
    return TaskRepository(db)

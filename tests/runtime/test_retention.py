"""Workers run retention (runtime/retention.py) while they claim and finish tasks."""

from __future__ import annotations

import asyncio

from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskStatus
from processgpt.runtime.retention import RetentionOptions
from tests.agents import executors as ex
from tests.conftest import StartWorker
from tests.runtime.test_worker import TENANT, submit, wait_status
from tests.support import wait_until


async def test_workers_delete_expired_work_while_they_run_tasks(
    db: Database, repo: TaskRepository, start_worker: StartWorker
) -> None:
    # 3000 tasks that finished 40 days ago, 3 events each, and 1 that finished yesterday
    await db.execute(
        """INSERT INTO todolist (tenant_id, agent_orch, status, created_at, finished_at, last_seq)
           SELECT $1, 'noop', 'DONE', now() - interval '41 days' + make_interval(secs => i),
                  now() - interval '40 days', 3
           FROM generate_series(1, 3000) i""",
        TENANT,
    )
    recent = await db.fetchval(
        """INSERT INTO todolist (tenant_id, agent_orch, status, created_at, finished_at)
           VALUES ($1, 'noop', 'DONE', now() - interval '2 days', now() - interval '1 day')
           RETURNING id""",
        TENANT,
    )
    await db.execute(
        """INSERT INTO events (tenant_id, todo_id, seq, job_id, event_type, data)
           SELECT t.tenant_id, t.id, s, 'job', 'task_working', '{}'
           FROM todolist t CROSS JOIN generate_series(1, 3) s"""
    )
    retention = RetentionOptions(default_days=30, interval=0.1, batch=100)
    workers = [
        await start_worker({"noop": ex.NoopExecutor()}, retention=retention) for _ in range(2)
    ]
    task_ids = [await submit(repo, "noop", f"q{i}") for i in range(30)]
    await asyncio.gather(
        *(wait_status(repo, task_id, TaskStatus.DONE, timeout=60) for task_id in task_ids)
    )

    async def old_gone() -> bool:
        left = await db.fetchval(
            "SELECT count(*) FROM todolist WHERE finished_at < now() - interval '30 days'"
        )
        return bool(left == 0)

    await wait_until(old_gone, timeout=60)
    kept = {r["id"] for r in await db.fetch("SELECT id FROM todolist")}
    assert kept == {recent, *task_ids}
    with_events = {r["todo_id"] for r in await db.fetch("SELECT DISTINCT todo_id FROM events")}
    assert with_events == kept
    passes = [w.retention.passes for w in workers if w.retention is not None]
    assert len(passes) == 2 and sum(passes) >= 1


async def test_a_worker_with_interval_zero_runs_no_retention(
    db: Database, start_worker: StartWorker
) -> None:
    await db.execute(
        """INSERT INTO todolist (tenant_id, agent_orch, status, created_at, finished_at)
           VALUES ($1, 'noop', 'DONE', now() - interval '50 days', now() - interval '40 days')""",
        TENANT,
    )
    worker = await start_worker(
        {"noop": ex.NoopExecutor()}, retention=RetentionOptions(default_days=30, interval=0)
    )
    await asyncio.sleep(0.5)
    assert worker.retention is None
    assert await db.fetchval("SELECT count(*) FROM todolist") == 1

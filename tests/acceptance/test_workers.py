"""Real worker processes: many tasks on two workers, SIGKILL, a frozen worker, a Postgres
restart, SIGTERM hand-back."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

from processgpt.db.database import Database
from processgpt.db.embedded import EmbeddedPostgres
from processgpt.db.migrate import migrate
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskSubmission
from tests.support import (
    StartProcess,
    assert_gap_free,
    pg_ctl,
    start_worker_process,
    wait_until,
)

TENANT = "default"


async def submit_demo(db: Database, query: str = "hello", **options: object) -> uuid.UUID:
    task, _ = await TaskRepository(db).submit(
        TENANT,
        TaskSubmission(agent_orch="demo", query=query, input=dict(options)),
        known_agents=frozenset({"demo"}),
    )
    return task.id


async def status_of(db: Database, task_id: uuid.UUID) -> str:
    return str(await db.fetchval("SELECT status FROM todolist WHERE id = $1", task_id))


async def is_done(db: Database, task_id: uuid.UUID) -> bool:
    return await status_of(db, task_id) == "DONE"


async def all_done(db: Database) -> bool:
    return bool(await db.fetchval("SELECT bool_and(status = 'DONE') FROM todolist"))


async def assert_all_logs_gap_free(db: Database) -> None:
    bad = await db.fetch(
        """SELECT t.id, t.last_seq, count(e.id) AS n, min(e.seq) AS lo, max(e.seq) AS hi
           FROM todolist t LEFT JOIN events e ON e.todo_id = t.id
           GROUP BY t.id HAVING count(e.id) <> t.last_seq OR min(e.seq) <> 1
                              OR max(e.seq) <> t.last_seq"""
    )
    assert bad == [], bad


async def test_two_workers_run_200_tasks(db: Database, start_process: StartProcess) -> None:
    workers = [await start_worker_process(start_process) for _ in range(2)]
    ids = [await submit_demo(db, f"task {i}", steps=2, delay=0.01) for i in range(200)]
    await wait_until(lambda: all_done(db), timeout=60)
    assert await db.fetchval("SELECT count(*) FROM todolist WHERE status = 'DONE'") == 200
    await assert_all_logs_gap_free(db)
    counts = await db.fetch(
        "SELECT event_type, count(*) FROM events GROUP BY event_type ORDER BY 1"
    )
    assert dict((r[0], r[1]) for r in counts) == {
        "crew_completed": 200,
        "task_started": 200,
        "task_working": 400,
    }
    for worker in workers:  # both took part
        assert "task done" in worker.log()
    output = await db.fetchval("SELECT output FROM todolist WHERE id = $1", ids[7])
    assert output["query"] == "task 7" and output["words"] == 2


async def test_sigkill_mid_task_finishes_on_the_other_worker(
    db: Database, start_process: StartProcess
) -> None:
    first = await start_worker_process(start_process, "--lease-seconds", "2")
    task_id = await submit_demo(db, steps=30, delay=0.1)
    await wait_until(
        lambda: db.fetchval("SELECT last_seq >= 4 FROM todolist WHERE id = $1", task_id)
    )
    first.proc.kill()  # SIGKILL
    first.proc.wait()
    await start_worker_process(start_process, "--lease-seconds", "2")
    await wait_until(lambda: is_done(db, task_id), timeout=30)
    rows = await assert_gap_free(db, task_id)
    types = [r["event_type"] for r in rows]
    assert "task_requeued" in types and types.count("crew_completed") == 1
    output = await db.fetchval("SELECT output FROM todolist WHERE id = $1", task_id)
    assert output["attempt"] == 2


async def test_frozen_worker_cannot_write_after_losing_its_lease(
    db: Database, start_process: StartProcess
) -> None:
    frozen = await start_worker_process(start_process, "--lease-seconds", "2")
    task_id = await submit_demo(db, steps=40, delay=0.05)
    await wait_until(
        lambda: db.fetchval("SELECT last_seq >= 3 FROM todolist WHERE id = $1", task_id)
    )
    frozen.signal(signal.SIGSTOP)
    await start_worker_process(start_process, "--lease-seconds", "2")
    await wait_until(lambda: is_done(db, task_id), timeout=30)
    before = await assert_gap_free(db, task_id)
    frozen.signal(signal.SIGCONT)  # it wakes up believing it still owns the task
    await frozen.wait_for_log("lease lost", timeout=15)
    frozen.signal(signal.SIGTERM)  # once it has exited, it cannot write anything later
    assert await frozen.wait() == 0, frozen.log()
    after = await assert_gap_free(db, task_id)
    assert after == before  # nothing of the frozen worker's was written
    assert await status_of(db, task_id) == "DONE"


async def test_sigterm_hands_the_task_back_without_using_an_attempt(
    db: Database, start_process: StartProcess
) -> None:
    first = await start_worker_process(start_process, "--shutdown-grace", "0.3")
    task_id = await submit_demo(db, steps=200, delay=0.05)
    await wait_until(
        lambda: db.fetchval("SELECT last_seq >= 2 FROM todolist WHERE id = $1", task_id)
    )
    first.signal(signal.SIGTERM)
    assert await first.wait(timeout=10) == 0
    row = await db.fetchrow("SELECT status, attempts FROM todolist WHERE id = $1", task_id)
    assert row is not None and (row["status"], row["attempts"]) == ("PENDING", 0)
    await db.execute("UPDATE todolist SET input = '{\"steps\": 1}' WHERE id = $1", task_id)
    await start_worker_process(start_process)
    await wait_until(lambda: is_done(db, task_id), timeout=30)
    output = await db.fetchval("SELECT output FROM todolist WHERE id = $1", task_id)
    assert output["attempt"] == 1
    await assert_gap_free(db, task_id)


async def test_postgres_restart_during_a_run(tmp_path: Path, start_process: StartProcess) -> None:
    server = await asyncio.to_thread(EmbeddedPostgres, tmp_path / "pg")
    dsn = server.dsn
    try:
        db = await Database.connect(dsn)
        await migrate(db)
        workers = [await start_worker_process(start_process, dsn=dsn) for _ in range(2)]
        ids = [await submit_demo(db, f"t{i}", steps=10, delay=0.1) for i in range(80)]
        await wait_until(
            lambda: db.fetchval("SELECT count(*) >= 10 FROM todolist WHERE status = 'DONE'"),
            timeout=30,
        )
        await db.close()
        await asyncio.to_thread(
            pg_ctl,
            server.data_dir,
            "-l",
            str(server.data_dir / "log"),
            "-w",
            "-m",
            "fast",
            "restart",
        )
        db = await Database.connect(dsn, connect_within=30)
        assert await db.fetchval("SELECT count(*) < 80 FROM todolist WHERE status = 'DONE'")
        await wait_until(lambda: all_done(db), timeout=60)
        for worker in workers:  # the restart hit them mid-run and they reconnected
            assert "listener reconnected" in worker.log()
        assert await db.fetchval("SELECT count(*) FROM todolist") == len(ids)
        await assert_all_logs_gap_free(db)
        await db.close()
    finally:
        await asyncio.to_thread(server.stop)


async def test_the_killed_workers_events_are_not_duplicated_under_load(
    db: Database, start_process: StartProcess
) -> None:
    """Kill one of two busy workers: every task still ends DONE exactly once."""
    victim = await start_worker_process(start_process, "--lease-seconds", "2")
    await start_worker_process(start_process, "--lease-seconds", "2")
    for i in range(60):
        await submit_demo(db, f"t{i}", steps=5, delay=0.05)
    await wait_until(
        lambda: db.fetchval("SELECT count(*) >= 10 FROM todolist WHERE status = 'DONE'"), timeout=30
    )
    victim.proc.kill()
    await wait_until(lambda: all_done(db), timeout=60)
    await assert_all_logs_gap_free(db)
    assert (
        await db.fetchval("SELECT count(*) FROM events WHERE event_type = 'crew_completed'") == 60
    )


async def test_connection_errors_are_redacted(start_process: StartProcess) -> None:
    proc = start_process("migrate", dsn="postgresql://u:s3cret-pw@127.0.0.1:1/none")
    code = await proc.wait(timeout=60)
    assert code != 0
    assert "s3cret-pw" not in proc.log()

"""Retention (db/retention.py, runtime/retention.py): exactly the expired finished work goes,
in batches, never a task of a running instance or an unfinished task, and claims never wait
for it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from processgpt.db.database import Database
from processgpt.db.retention import RetentionRepository
from processgpt.db.sql import QUERIES
from processgpt.db.tenants import TenantRepository
from processgpt.runtime.retention import RetentionJob, RetentionOptions

TERMINAL = ("DONE", "FAILED", "CANCELLED")


async def add_task(
    db: Database,
    tenant: str,
    status: str,
    *,
    age_days: float,
    finished_days: float | None = None,
    instance: uuid.UUID | None = None,
    events: int = 3,
    activity: str | None = None,
) -> uuid.UUID:
    """A task created ``age_days`` ago in ``status`` (finished ``finished_days`` ago when
    terminal), with ``events`` events numbered 1..n."""
    finished = finished_days if status in TERMINAL else None
    if status in TERMINAL and finished is None:
        finished = age_days
    running = status == "IN_PROGRESS"
    task_id: uuid.UUID = await db.fetchval(
        """INSERT INTO todolist (tenant_id, agent_orch, status, proc_inst_id, activity_id,
                                 activation, consumer, lease_until, created_at, finished_at,
                                 last_seq)
           VALUES ($1, 'demo', $2::todo_status, $3, $4, CASE WHEN $3::uuid IS NULL THEN NULL
                   ELSE 1 END, CASE WHEN $5 THEN 'w' END,
                   CASE WHEN $5 THEN now() + interval '1 minute' END,
                   now() - make_interval(secs => $6::float8 * 86400),
                   now() - make_interval(secs => $7::float8 * 86400), $8)
           RETURNING id""",
        tenant,
        status,
        instance,
        activity or (None if instance is None else f"a{uuid.uuid4().hex[:6]}"),
        running,
        age_days,
        finished,
        events,
    )
    if events:
        await db.execute(
            """INSERT INTO events (tenant_id, todo_id, seq, job_id, event_type, data)
               SELECT $1, $2, s, 'job', 'task_working', '{}' FROM generate_series(1, $3) s""",
            tenant,
            task_id,
            events,
        )
    return task_id


async def add_instance(
    db: Database,
    tenant: str,
    status: str,
    *,
    age_days: float,
    ended_days: float | None = None,
    parent: uuid.UUID | None = None,
    engine: bool = False,
) -> uuid.UUID:
    """An instance; ``engine``: driven by the engine (it has state), else the one-task form."""
    ended = ended_days if ended_days is not None else age_days
    finished = status in ("COMPLETED", "ERROR", "CANCELLED")
    instance: uuid.UUID = await db.fetchval(
        """INSERT INTO bpm_proc_inst (tenant_id, status, start_date, end_date,
                                      parent_proc_inst_id, parent_node_id, parent_activation,
                                      history_seq, state)
           VALUES ($1, $2::proc_inst_status, now() - make_interval(secs => $3::float8 * 86400),
                   CASE WHEN $4 THEN now() - make_interval(secs => $5::float8 * 86400) END,
                   $6, CASE WHEN $6::uuid IS NOT NULL THEN 'call' END,
                   CASE WHEN $6::uuid IS NOT NULL THEN 1 END, 1,
                   CASE WHEN $7 THEN '{}'::jsonb END)
           RETURNING proc_inst_id""",
        tenant,
        status,
        age_days,
        finished,
        ended,
        parent,
        engine,
    )
    await db.execute(
        """INSERT INTO process_history (proc_inst_id, seq, tenant_id, kind, at)
           VALUES ($1, 1, $2, 'started', now())""",
        instance,
        tenant,
    )
    return instance


async def remaining(db: Database, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = await db.fetch("SELECT id FROM todolist WHERE id = ANY($1::uuid[])", ids)
    return {r["id"] for r in rows}


async def event_tasks(db: Database) -> set[uuid.UUID]:
    return {r["todo_id"] for r in await db.fetch("SELECT DISTINCT todo_id FROM events")}


async def instances(db: Database) -> set[uuid.UUID]:
    return {r["proc_inst_id"] for r in await db.fetch("SELECT proc_inst_id FROM bpm_proc_inst")}


async def test_a_pass_deletes_exactly_the_expired_finished_work(db: Database) -> None:
    tenants = TenantRepository(db)
    await tenants.ensure("acme")  # the deployment's default: 30 days
    await tenants.put("keep", retention_days=0, set_retention=True)  # forever
    await tenants.put("short", retention_days=1, set_retention=True)
    await tenants.put("long", retention_days=60, set_retention=True)

    gone: list[uuid.UUID] = []
    kept: list[uuid.UUID] = []
    for status in TERMINAL:
        gone += [await add_task(db, "acme", status, age_days=40) for _ in range(3)]
    # created long ago, finished recently: its retention runs from its end
    kept.append(await add_task(db, "acme", "DONE", age_days=40, finished_days=10))
    for status in ("PENDING", "IN_PROGRESS", "INPUT_REQUIRED", "TODO"):
        kept.append(await add_task(db, "acme", status, age_days=400))
    gone.append(await add_task(db, "short", "DONE", age_days=2))
    kept.append(await add_task(db, "short", "DONE", age_days=0.5))
    kept.append(await add_task(db, "keep", "DONE", age_days=4000))
    kept.append(await add_task(db, "long", "FAILED", age_days=40))

    # A: ended long ago, with a child that ended long ago: the whole tree goes
    a = await add_instance(db, "acme", "COMPLETED", age_days=50, ended_days=40)
    a_child = await add_instance(db, "acme", "COMPLETED", age_days=50, ended_days=41, parent=a)
    gone += [
        await add_task(db, "acme", "DONE", age_days=50, finished_days=45, instance=a),
        await add_task(db, "acme", "CANCELLED", age_days=50, finished_days=45, instance=a),
        await add_task(db, "acme", "DONE", age_days=50, finished_days=42, instance=a_child),
    ]
    # B: still running: its old finished task stays
    b = await add_instance(db, "acme", "RUNNING", age_days=300, engine=True)
    kept.append(await add_task(db, "acme", "DONE", age_days=300, instance=b))
    # C: ended long ago but its child still runs: nothing of the tree goes
    c = await add_instance(db, "acme", "CANCELLED", age_days=50, ended_days=40)
    c_child = await add_instance(db, "acme", "RUNNING", age_days=50, parent=c, engine=True)
    kept += [
        await add_task(db, "acme", "DONE", age_days=50, finished_days=45, instance=c),
        await add_task(db, "acme", "PENDING", age_days=50, instance=c_child),
    ]
    # G: ended long ago, its child (no task yet) still runs
    g = await add_instance(db, "acme", "COMPLETED", age_days=50, ended_days=40)
    g_child = await add_instance(db, "acme", "RUNNING", age_days=50, parent=g, engine=True)
    # H: the one-task form (no engine state, stays RUNNING): ended when its tasks all ended
    h = await add_instance(db, "acme", "RUNNING", age_days=50)
    gone.append(await add_task(db, "acme", "DONE", age_days=50, finished_days=45, instance=h))
    h_open = await add_instance(db, "acme", "RUNNING", age_days=50)
    kept += [
        await add_task(db, "acme", "DONE", age_days=50, finished_days=45, instance=h_open),
        await add_task(db, "acme", "INPUT_REQUIRED", age_days=50, instance=h_open),
    ]
    h_empty = await add_instance(db, "acme", "RUNNING", age_days=50)
    # D: ended within the retention
    d = await add_instance(db, "acme", "ERROR", age_days=50, ended_days=10)
    kept.append(await add_task(db, "acme", "FAILED", age_days=50, finished_days=10, instance=d))
    # E: an instance in an incident (no end) with an old finished task
    e = await add_instance(db, "acme", "INCIDENT", age_days=90, engine=True)
    kept.append(await add_task(db, "acme", "FAILED", age_days=90, instance=e))
    # F: ended long ago, but one of its tasks ended within the retention
    f = await add_instance(db, "acme", "COMPLETED", age_days=50, ended_days=40)
    kept.append(await add_task(db, "acme", "DONE", age_days=50, finished_days=5, instance=f))

    job = RetentionJob(RetentionRepository(db), RetentionOptions(default_days=30, batch=2))
    preview = await job.preview()
    assert set(preview) == {"acme", "default", "short", "long"}  # "keep" never expires

    removed = await job.run_once()

    assert removed is not None
    assert await remaining(db, gone + kept) == set(kept)
    assert await event_tasks(db) == set(kept)
    left = {b, c, c_child, d, e, f, g, g_child, h_open, h_empty}
    assert await instances(db) == left
    history = await db.fetch("SELECT DISTINCT proc_inst_id FROM process_history")
    assert {r["proc_inst_id"] for r in history} == left
    # what the preview announced is what went, tenant by tenant
    assert {t: (r.tasks, r.events, r.instances) for t, r in removed.items()} == {
        t: (r.tasks, r.events, r.instances) for t, (_c, r) in preview.items() if not r.empty
    }
    assert (removed["acme"].tasks, removed["acme"].events, removed["acme"].instances) == (
        13,
        39,
        3,
    )
    assert (removed["short"].tasks, removed["short"].events) == (1, 3)

    again = await job.run_once()
    assert again == {}


async def test_the_deployment_default_of_zero_keeps_everything(db: Database) -> None:
    await TenantRepository(db).ensure("acme")
    task = await add_task(db, "acme", "DONE", age_days=10_000)
    job = RetentionJob(RetentionRepository(db), RetentionOptions(default_days=0))
    assert await job.run_once() == {}
    assert await job.preview() == {}
    assert await remaining(db, [task]) == {task}


async def test_one_pass_at_a_time(db: Database) -> None:
    repo = RetentionRepository(db)
    async with repo.exclusive() as first:
        assert first is not None
        async with repo.exclusive() as second:
            assert second is None
        job = RetentionJob(repo, RetentionOptions(default_days=1))
        assert await job.run_once() is None
    async with repo.exclusive() as later:
        assert later is not None


async def _claim(db_url: str, *, lock_timeout: str) -> list[Any]:
    """The worker's claim statement on a connection of its own that waits at most
    ``lock_timeout`` for any lock."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(f"SET lock_timeout = '{lock_timeout}'")
        return list(await conn.fetch(QUERIES["claim_tasks"], ["demo"], 10, "claimer", 30.0, [], []))
    finally:
        await conn.close()


async def test_a_claim_does_not_wait_for_a_retention_batch_nor_the_reverse(
    db: Database, db_url: str
) -> None:
    await TenantRepository(db).ensure("acme")
    old = [await add_task(db, "acme", "DONE", age_days=40) for _ in range(50)]
    pending = [await add_task(db, "acme", "PENDING", age_days=40, events=0) for _ in range(3)]
    cutoff = (await RetentionRepository(db).cutoffs(30))[0]

    # A retention batch holds its rows (and every page it touched) until it commits...
    async with db.transaction() as conn:
        rows = await conn.fetch(
            QUERIES["retention_delete_tasks"],
            "acme",
            cutoff.cutoff,
            1000,
            *(await _before_all(conn)),
        )
        assert len(rows) == 50
        # ...and meanwhile a claim with a 200 ms lock timeout gets every pending task.
        claimed = await asyncio.wait_for(_claim(db.dsn, lock_timeout="200ms"), 10)
        assert sorted(r["id"] for r in claimed) == sorted(pending)
    assert await remaining(db, old) == set()

    # The reverse: a claim's transaction holds its rows while a retention batch runs.
    more = [await add_task(db, "acme", "FAILED", age_days=40) for _ in range(5)]
    waiting = await add_task(db, "acme", "PENDING", age_days=40, events=0)
    async with db.transaction() as conn:
        held = await conn.fetch(QUERIES["claim_tasks"], ["demo"], 10, "claimer", 30.0, [], [])
        assert [r["id"] for r in held] == [waiting]
        job = RetentionJob(
            RetentionRepository(db), RetentionOptions(default_days=30, lock_timeout=0.2)
        )
        removed = await asyncio.wait_for(job.run_once(), 10)
        assert removed is not None and removed["acme"].tasks == 5
    assert await remaining(db, [*more, waiting]) == {waiting}


async def _before_all(conn: asyncpg.Connection) -> tuple[Any, uuid.UUID]:
    return await conn.fetchval("SELECT '-infinity'::timestamptz"), uuid.UUID(int=0)


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
async def test_a_batch_walks_the_tenant_index_not_the_table(db: Database, plan_mode: str) -> None:
    """With many recent finished tasks, a batch reads the tenant's old range of
    todolist_tenant_created, never the whole table."""
    await TenantRepository(db).ensure("acme")
    await db.execute(
        """INSERT INTO todolist (tenant_id, agent_orch, status, created_at, finished_at)
           SELECT 'acme', 'demo', 'DONE', now() - make_interval(secs => i),
                  now() - make_interval(secs => i)
           FROM generate_series(1, 20000) i"""
    )
    await db.execute("ANALYZE todolist")
    async with db.transaction() as conn:
        await conn.execute(f"SET LOCAL plan_cache_mode = {plan_mode}")
        await conn.execute(f"PREPARE batch AS {QUERIES['retention_delete_tasks']}")
        rows = await conn.fetch(
            "EXPLAIN (ANALYZE) EXECUTE batch ('acme', now() - interval '1 day', 100, "
            "'-infinity', '00000000-0000-0000-0000-000000000000')"
        )
        await conn.execute("DEALLOCATE batch")
    plan = "\n".join(r[0] for r in rows)
    assert "todolist_tenant_created" in plan, plan
    assert "Seq Scan on todolist" not in plan, plan


async def test_old_notifications_and_finished_deliveries_go_pending_ones_stay(
    db: Database,
) -> None:
    """Notifications written before the cutoff and webhook deliveries that ended before it
    go, in batches; a pending delivery stays, however old; another tenant's stay."""
    from processgpt.db.secret_box import SecretBox, new_key  # noqa: PLC0415
    from processgpt.db.webhooks import WebhookRepository  # noqa: PLC0415

    for tenant in ("acme", "globex"):
        await TenantRepository(db).ensure(tenant)
        endpoint = await WebhookRepository(db, SecretBox([new_key()])).create(
            tenant, "https://example.com/h", []
        )
        for status, days in (("DELIVERED", 40), ("DEAD", 35), ("PENDING", 50), ("DELIVERED", 1)):
            await db.execute(
                """INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_type, payload,
                                                   status, created_at, finished_at)
                   VALUES ($1, $2, 'task.completed', '{}', $3::webhook_delivery_status,
                           now() - make_interval(days => $4),
                           CASE WHEN $3 <> 'PENDING' THEN now() - make_interval(days => $4)
                           END)""",
                tenant,
                endpoint.id,
                status,
                days,
            )
        for days in (45, 40, 31, 2):
            await db.execute(
                """INSERT INTO notifications (tenant_id, type, message, created_at)
                   VALUES ($1, 'PROCESS_DONE', 'm', now() - make_interval(days => $2))""",
                tenant,
                days,
            )
    await TenantRepository(db).put("globex", retention_days=0, set_retention=True)
    job = RetentionJob(RetentionRepository(db), RetentionOptions(default_days=30, batch=2))
    removed = await job.run_once()
    assert removed is not None
    assert (removed["acme"].notifications, removed["acme"].deliveries) == (3, 2)
    assert "globex" not in removed
    left = await db.fetch(
        "SELECT tenant_id, status::text, count(*) FROM webhook_deliveries GROUP BY 1, 2 "
        "ORDER BY 1, 2"
    )
    assert [tuple(r) for r in left] == [
        ("acme", "DELIVERED", 1),
        ("acme", "PENDING", 1),
        ("globex", "DEAD", 1),
        ("globex", "DELIVERED", 2),
        ("globex", "PENDING", 1),
    ]
    notes = await db.fetch("SELECT tenant_id, count(*) FROM notifications GROUP BY 1 ORDER BY 1")
    assert [tuple(r) for r in notes] == [("acme", 1), ("globex", 4)]

"""The deployment snapshot behind /metrics: what it counts, that it costs O(open work) (no
sequential scan of todolist with 100k finished tasks), and that one process computes it per
interval."""

from __future__ import annotations

import asyncio
import json
import uuid

from processgpt.db.database import Database
from processgpt.db.metrics import MetricsRepository
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskSubmission


async def _finished_tasks(db: Database, count: int) -> None:
    await db.execute(
        """
        INSERT INTO todolist (tenant_id, agent_orch, status, attempts, started_at, finished_at)
        SELECT 'default', 'demo', 'DONE', 1, now() - interval '1 hour', now()
        FROM generate_series(1, $1)
        """,
        count,
    )


async def test_snapshot_counts_open_work_by_agent(db: Database, repo: TaskRepository) -> None:
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo'), ('other')")
    for _ in range(3):
        await repo.submit("default", TaskSubmission(agent_orch="demo"))
    later = await repo.submit("default", TaskSubmission(agent_orch="other"))
    await db.execute(
        "UPDATE todolist SET run_at = now() + interval '1 hour' WHERE id = $1", later[0].id
    )
    # A name neither built in nor registered by a worker is not a label of its own.
    await db.execute(
        "INSERT INTO todolist (tenant_id, agent_orch) VALUES ('default', 'made-up'), "
        "('default', 'built-in')"
    )
    await db.execute(
        "UPDATE todolist SET status = 'INPUT_REQUIRED' WHERE id = "
        "(SELECT id FROM todolist WHERE agent_orch = 'demo' LIMIT 1)"
    )
    await db.execute(
        "UPDATE todolist SET created_at = now() - interval '90 seconds', "
        "run_at = now() - interval '90 seconds' "
        "WHERE id = (SELECT id FROM todolist WHERE agent_orch = 'demo' AND status = 'PENDING' "
        "LIMIT 1)"
    )
    await _finished_tasks(db, 5)

    snap = await MetricsRepository(db, frozenset({"built-in"})).snapshot(max_age=10)

    assert snap is not None and snap.refreshed
    data = snap.data
    assert data["pending"] == {"demo": 2, "other": 1, "built-in": 1, "_unregistered": 1}
    assert data["pending_due"] == {"demo": 2, "other": 0, "built-in": 1, "_unregistered": 1}
    assert data["in_progress"] == {"demo": 0, "other": 0, "built-in": 0, "_unregistered": 0}
    assert data["input_required"] == {"demo": 1, "other": 0, "built-in": 0, "_unregistered": 0}
    assert 89 <= data["oldest_pending_seconds"]["demo"] < 120
    assert data["oldest_pending_seconds"]["other"] == 0  # its one task is not due
    assert data["instances"] == {}
    assert data["incidents_open"] == 0


async def test_snapshot_is_computed_once_per_interval(db: Database, repo: TaskRepository) -> None:
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo')")
    metrics = MetricsRepository(db)
    first = await metrics.snapshot(max_age=60)
    assert first is not None and first.refreshed
    await repo.submit("default", TaskSubmission(agent_orch="demo"))
    again = await metrics.snapshot(max_age=60)
    assert again is not None and not again.refreshed
    assert again.data == first.data  # not recounted within the interval
    # Many processes asking at once when it is due: exactly one recomputes it.
    await db.execute("UPDATE metrics_snapshot SET taken_at = now() - interval '1 hour'")
    others = [Database.connect(db.dsn, max_size=2) for _ in range(4)]
    pools = await asyncio.gather(*others)
    try:
        results = await asyncio.gather(*(MetricsRepository(p).snapshot(60) for p in pools))
    finally:
        await asyncio.gather(*(p.close() for p in pools))
    assert sum(1 for r in results if r is not None and r.refreshed) == 1
    latest = await metrics.snapshot(max_age=60)
    assert latest is not None and latest.data["pending"] == {"demo": 1}


async def test_snapshot_reads_no_finished_tasks(db: Database, repo: TaskRepository) -> None:
    """100k finished tasks and 10 pending: the plan never scans todolist sequentially."""
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo')")
    await _finished_tasks(db, 100_000)
    for _ in range(10):
        await repo.submit("default", TaskSubmission(agent_orch="demo"))
    await db.execute("ANALYZE todolist")
    await db.execute("ANALYZE bpm_proc_inst")

    plan = await MetricsRepository(db).compute_plan()

    assert "todolist" in plan
    assert "Seq Scan on todolist" not in plan, plan
    # and what it says is right
    snap = await MetricsRepository(db).snapshot(max_age=10)
    assert snap is not None and snap.data["pending"] == {"demo": 10}
    # The plan as JSON names only index scans of todolist.
    rows = await db.fetch("EXPLAIN (FORMAT JSON) " + _compute_query(), [])
    plan_json = json.loads(rows[0][0]) if isinstance(rows[0][0], str) else rows[0][0]
    scans = _scans(plan_json)
    todolist_scans = [kind for kind, relation in scans if relation == "todolist"]
    assert todolist_scans, scans
    assert "Seq Scan" not in todolist_scans, scans
    # every index it reads is one of the partial indexes of open work
    assert set(_indexes(plan_json)) <= {
        "todolist_claim",
        "todolist_lease",
        "todolist_input_required",
        "bpm_proc_inst_open",
        "orchestrators_pkey",
        "webhook_deliveries_endpoint_due",  # pending webhook deliveries only
    }, _indexes(plan_json)


def _compute_query() -> str:
    from processgpt.db.sql import QUERIES  # noqa: PLC0415 - tests may read the named query

    return QUERIES["compute_metrics_snapshot"]


def _indexes(plan: object) -> list[str]:
    found: list[str] = []
    if isinstance(plan, list):
        for item in plan:
            found += _indexes(item)
    elif isinstance(plan, dict):
        if "Index Name" in plan:
            found.append(plan["Index Name"])
        for value in plan.values():
            if isinstance(value, (list, dict)):
                found += _indexes(value)
    return found


def _scans(plan: object) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    if isinstance(plan, list):
        for item in plan:
            found += _scans(item)
    elif isinstance(plan, dict):
        if "Node Type" in plan and "Relation Name" in plan:
            found.append((plan["Node Type"], plan["Relation Name"]))
        for value in plan.values():
            if isinstance(value, (list, dict)):
                found += _scans(value)
    return found


async def test_tenant_summary_is_the_tenants_own(db: Database, repo: TaskRepository) -> None:
    await db.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo')")
    await repo.submit("default", TaskSubmission(agent_orch="demo"))
    await repo.submit("acme", TaskSubmission(agent_orch="demo"))
    await repo.submit("acme", TaskSubmission(agent_orch="demo"))
    task_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO todolist (id, tenant_id, agent_orch, status, attempts, created_at, "
        "started_at, finished_at) VALUES ($1, 'acme', 'demo', 'DONE', 1, "
        "now() - interval '10 seconds', now() - interval '8 seconds', "
        "now() - interval '5 seconds')",
        task_id,
    )
    metrics = MetricsRepository(db)
    queue = await metrics.tenant_queue("acme")
    assert [(r["agent"], r["status"], r["n"]) for r in queue] == [("demo", "PENDING", 2)]
    timings = await metrics.tenant_timings("acme", 3600, 100)
    assert len(timings) == 1
    t = timings[0]
    assert (t["agent"], t["n"], t["done"], t["failed"]) == ("demo", 1, 1, 0)
    assert [round(x, 3) for x in t["wait"]] == [2.0, 2.0, 2.0]
    assert [round(x, 3) for x in t["run"]] == [3.0, 3.0, 3.0]
    assert await metrics.tenant_timings("default", 3600, 100) == []


async def test_tenant_summary_reads_no_finished_tasks(db: Database, repo: TaskRepository) -> None:
    """The console's queue view of a tenant with 100k finished tasks: index scans only."""
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo')")
    await _finished_tasks(db, 100_000)
    await db.execute(
        "UPDATE todolist SET status = 'FAILED' WHERE id IN (SELECT id FROM todolist LIMIT 20000)"
    )
    for _ in range(3):
        await repo.submit("default", TaskSubmission(agent_orch="demo"))
    await db.execute(
        "UPDATE todolist SET status = 'IN_PROGRESS', lease_until = now() + interval '1 minute', "
        "consumer = 'w1', attempts = 1, "
        "started_at = now() WHERE id = (SELECT id FROM todolist WHERE status = 'PENDING' LIMIT 1)"
    )
    await db.execute("ANALYZE todolist")
    from processgpt.db.sql import QUERIES  # noqa: PLC0415 - tests may read the named query

    rows = await db.fetch(
        "EXPLAIN (FORMAT JSON) " + QUERIES["tenant_queue_summary"].replace("$1", "'default'")
    )
    plan_json = json.loads(rows[0][0]) if isinstance(rows[0][0], str) else rows[0][0]
    todolist_scans = [kind for kind, relation in _scans(plan_json) if relation == "todolist"]
    assert todolist_scans and "Seq Scan" not in todolist_scans, plan_json
    assert set(_indexes(plan_json)) <= {"todolist_tenant_open", "todolist_lease"}, plan_json
    queue = await MetricsRepository(db).tenant_queue("default")
    assert sorted((r["agent"], r["status"], r["n"]) for r in queue) == [
        ("demo", "IN_PROGRESS", 1),
        ("demo", "PENDING", 2),
    ]

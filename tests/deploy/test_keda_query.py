"""The KEDA scaler's query (deploy/kubernetes/keda.yaml), run as KEDA runs it against the real
migrated schema: ceil((claimable pending + in progress) / slots per pod) for the worker's
agents, read from the partial indexes of open tasks whatever the number of finished ones."""

from __future__ import annotations

import re
import uuid

import asyncpg
import pytest

from processgpt.db.database import Database
from tests.deploy.files import ROOT, find, manifests

AGENT = "llm"


def scaler_query() -> str:
    scaled = find(manifests(), "ScaledObject", "processgpt-worker")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    return str(trigger["metadata"]["query"])


async def _add(db: Database, count: int, status: str, agent: str = AGENT, **columns: str) -> None:
    """``count`` tasks of ``agent`` in ``status``, with the columns their state needs."""
    values = {
        "IN_PROGRESS": {"consumer": "'w'", "lease_until": "now() + interval '30 seconds'"},
        "DONE": {"finished_at": "now()"},
        "FAILED": {"finished_at": "now()"},
        "CANCELLED": {"finished_at": "now()"},
    }.get(status, {})
    values = {**values, **columns}
    names = "".join(f", {name}" for name in values)
    exprs = "".join(f", {expr}" for expr in values.values())
    await db.execute(
        f"INSERT INTO todolist (tenant_id, agent_orch, status{names})"
        f" SELECT 'default', $1, $2::todo_status{exprs} FROM generate_series(1, $3)",
        agent,
        status,
        count,
    )


async def _scale(db: Database) -> float:
    value = await db.fetchval(scaler_query())
    assert isinstance(value, float), type(value)  # KEDA scans it into a float64
    return value


async def test_the_query_asks_for_one_pod_per_slots_of_open_work(db: Database) -> None:
    assert await _scale(db) == 0  # nothing to do: KEDA's activation (> 0) stays off
    await _add(db, 1, "PENDING")
    assert await _scale(db) == 1
    await _add(db, 9, "IN_PROGRESS")
    assert await _scale(db) == 1  # 10 open tasks fill one pod of 10 slots
    await _add(db, 1, "PENDING")
    assert await _scale(db) == 2
    # Neither finished tasks, nor tasks waiting for a person, a retry's backoff or a later
    # run_at, nor another agent's tasks need a pod of this Deployment.
    for status in ("DONE", "FAILED", "CANCELLED", "INPUT_REQUIRED", "TODO"):
        await _add(db, 25, status)
    await _add(db, 25, "PENDING", run_at="now() + interval '5 minutes'")
    await _add(db, 25, "PENDING", agent="demo")
    await _add(db, 25, "IN_PROGRESS", agent="demo")
    assert await _scale(db) == 2
    await _add(db, 26, "PENDING")  # 37 open: 4 pods
    assert await _scale(db) == 4


async def test_the_query_reads_the_partial_indexes_of_open_tasks(db: Database) -> None:
    """With 100k finished tasks and a few open ones, neither half scans the table: pending
    tasks come from a partial index of open tasks (the claim index, or the tenant listing's
    index of open states when the planner finds both as small), running ones from the lease
    index; the whole query reads a handful of pages."""
    await _add(db, 50_000, "DONE")
    await _add(db, 50_000, "DONE", agent="demo")
    await _add(db, 7, "PENDING")
    await _add(db, 3, "IN_PROGRESS")
    await _add(db, 5, "PENDING", agent="demo")
    await db.execute("ANALYZE todolist")
    plan = "\n".join(r[0] for r in await db.fetch(f"EXPLAIN (ANALYZE) {scaler_query()}"))
    assert "Seq Scan on todolist" not in plan, plan
    indexes = re.findall(
        r"(?:Index Scan using|Index Only Scan using|Bitmap Index Scan on) (\w+)", plan
    )
    assert len(indexes) == 2, plan
    assert indexes[0] in ("todolist_claim", "todolist_tenant_open"), plan  # WHERE status = PENDING
    assert indexes[1] == "todolist_lease", plan  # WHERE status = 'IN_PROGRESS'
    pages = int(re.search(r"Buffers: shared hit=(\d+)", plan)[1])  # type: ignore[index]
    assert pages < 50, plan  # 100k finished rows fill thousands of pages
    assert await _scale(db) == 1


async def test_a_role_that_reads_three_columns_is_enough_for_the_scaler(db: Database) -> None:
    """deploy/README.md's least-privilege role for KEDA: SELECT on status, agent_orch and
    run_at only; the tasks' contents stay out of its reach."""
    role = f"keda_{uuid.uuid4().hex[:8]}"
    await _add(db, 3, "PENDING")
    async with db.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:  # the role lives only in this transaction
            await conn.execute(f"CREATE ROLE {role} NOLOGIN")
            await conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
            await conn.execute(f"GRANT SELECT (status, agent_orch, run_at) ON todolist TO {role}")
            await conn.execute(f"SET LOCAL ROLE {role}")
            assert await conn.fetchval(scaler_query()) == 1
            await conn.execute("SAVEPOINT refused")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetchval("SELECT query FROM todolist LIMIT 1")
            await conn.execute("ROLLBACK TO SAVEPOINT refused")
        finally:
            await transaction.rollback()
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "GRANT SELECT (status, agent_orch, run_at) ON todolist TO" in readme

"""db/schedules.py: the claim's plan walks the due index, and the schema's invariants."""

from __future__ import annotations

import asyncpg
import pytest

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.db.tenants import TenantRepository
from processgpt.db.worker_queries import SERVER_SETTINGS


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", SERVER_SETTINGS["plan_cache_mode"]])
async def test_the_due_claim_walks_the_due_index(db: Database, plan_mode: str) -> None:
    """With many schedules, most not due or disabled, the claim reads the earliest due
    entries of the partial index and stops after its limit."""
    await TenantRepository(db).ensure("acme")
    await db.execute(
        """INSERT INTO schedules (tenant_id, name, cron, target, task, enabled, next_run_at)
           SELECT 'acme', 's' || i, '* * * * *', 'task', '{"agent_orch": "demo"}',
                  i % 3 <> 0, now() + (i % 1000 - 10) * interval '1 minute'
           FROM generate_series(1, 20000) i"""
    )
    await db.execute("ANALYZE schedules")
    async with db.transaction() as conn:
        await conn.execute(f"SET LOCAL plan_cache_mode = {plan_mode}")
        await conn.execute(f"PREPARE claim AS {QUERIES['claim_due_schedules']}")
        rows = await conn.fetch("EXPLAIN (ANALYZE) EXECUTE claim (20)")
        await conn.execute("DEALLOCATE claim")
    plan = "\n".join(r[0] for r in rows)
    assert "schedules_due" in plan, plan
    assert "Seq Scan on schedules" not in plan and "Sort" not in plan, plan


async def test_the_schema_refuses_inconsistent_schedules(db: Database) -> None:
    await TenantRepository(db).ensure("acme")
    bad = [
        # enabled without a next tick
        "('acme', 'a', '* * * * *', NULL, 'task', NULL, '{}', true, NULL, 'api')",
        # a process target without its definition
        "('acme', 'b', '* * * * *', NULL, 'process', NULL, NULL, false, NULL, 'api')",
        # a cron and a cycle at once
        "('acme', 'c', '* * * * *', 'R/PT1H', 'task', NULL, '{}', false, NULL, 'api')",
        # a definition's schedule queueing a task
        "('acme', 'd', '* * * * *', NULL, 'task', NULL, '{}', false, NULL, 'definition')",
    ]
    for values in bad:
        with pytest.raises(asyncpg.exceptions.CheckViolationError):
            await db.execute(
                "INSERT INTO schedules (tenant_id, name, cron, cycle, target, proc_def_id, task, "
                f"enabled, next_run_at, source) VALUES {values}"
            )

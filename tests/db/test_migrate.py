from __future__ import annotations

import re

import asyncpg
import pytest

from processgpt.db.database import Database
from processgpt.db.migrate import available_migrations, current_version, migrate
from processgpt.db.sql import QUERIES
from tests.support import PostgresServer


async def test_all_migrations_apply_to_an_empty_database(pg_server: PostgresServer) -> None:
    url = await pg_server.create_database(empty=True)
    db = await Database.connect(url)
    try:
        assert await current_version(db) == 0
        applied = await migrate(db)
        assert [m.version for m in applied] == [m.version for m in available_migrations()]
        assert await current_version(db) == len(applied)
        assert await migrate(db) == []  # a second run applies nothing
        tables = {
            r["tablename"]
            for r in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {
            "todolist",
            "events",
            "bpm_proc_inst",
            "proc_def",
            "users",
            "tenants",
            "form_def",
            "proc_inst_source",
            "schema_migrations",
        } <= tables
    finally:
        await db.close()
        await pg_server.drop_database(url)


async def test_claim_query_plan_uses_the_claim_index(db: Database) -> None:
    """With a large backlog for several orchestrators the claim walks each one's index range
    in order and stops after the limit: no scan or sort of the whole backlog."""
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo'), ('other')")
    await db.execute(
        """INSERT INTO todolist (tenant_id, agent_orch, status, finished_at)
           SELECT 'default', CASE WHEN i % 2 = 0 THEN 'demo' ELSE 'other' END, 'DONE', now()
           FROM generate_series(1, 20000) i"""
    )
    await db.execute(
        """INSERT INTO todolist (tenant_id, agent_orch, priority)
           SELECT 'default', CASE WHEN i % 2 = 0 THEN 'demo' ELSE 'other' END, i % 5
           FROM generate_series(1, 20000) i"""
    )
    await db.execute("ANALYZE todolist")
    async with db.transaction() as conn:
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN (ANALYZE, BUFFERS) " + QUERIES["claim_tasks"],
                ["demo", "other"],
                10,
                "w",
                30.0,
            )
        )
    assert "todolist_claim" in plan, plan
    assert "Seq Scan on todolist" not in plan, plan
    # each orchestrator's index scan stops after at most the limit
    scans = [line for line in plan.splitlines() if "Index Scan using todolist_claim" in line]
    actual_rows = [
        float(m) for line in scans for m in re.findall(r"actual [^)]*rows=([\d.]+)", line)
    ]
    assert actual_rows and all(rows <= 10 for rows in actual_rows), plan


async def test_schema_refuses_invalid_states(db: Database) -> None:
    with pytest.raises(asyncpg.exceptions.CheckViolationError):
        # running without an owner
        await db.execute(
            "INSERT INTO todolist (tenant_id, agent_orch, status) "
            "VALUES ('default', 'demo', 'IN_PROGRESS')"
        )
    with pytest.raises(asyncpg.exceptions.CheckViolationError):
        await db.execute(
            "INSERT INTO todolist (tenant_id, agent_orch, status) "
            "VALUES ('default', 'demo', 'DONE')"
        )  # terminal without finish time
    with pytest.raises(asyncpg.exceptions.InvalidTextRepresentationError):
        await db.execute(
            "INSERT INTO todolist (tenant_id, agent_orch, status) "
            "VALUES ('default', 'demo', 'RUNNING')"
        )
    with pytest.raises(asyncpg.exceptions.CheckViolationError):
        await db.execute(
            "INSERT INTO todolist (tenant_id, agent_orch) VALUES ('default', 'Bad Name')"
        )

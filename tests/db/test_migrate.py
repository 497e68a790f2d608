from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import asyncpg
import pytest

from processgpt.db.database import Database
from processgpt.db.migrate import available_migrations, current_version, migrate
from processgpt.db.sql import QUERIES
from processgpt.db.tasks import list_tasks_query
from processgpt.db.worker_queries import SERVER_SETTINGS as WORKER_SERVER_SETTINGS
from processgpt.domain.task import TaskStatus
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


async def test_tasks_get_time_ordered_version_7_ids(db: Database) -> None:
    """Ids of tasks created one after another share their leading timestamp bits, so a claim
    in age order touches few index pages (migration 0012)."""
    before = time.time()
    ids: list[uuid.UUID] = []
    for _ in range(3):
        ids.append(
            await db.fetchval(
                "INSERT INTO todolist (tenant_id, agent_orch) VALUES ('default', 'noop')"
                " RETURNING id"
            )
        )
        await asyncio.sleep(0.002)  # the next id is in a later millisecond
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    millis = [int(i.hex[:12], 16) / 1000 for i in ids]
    assert millis == sorted(millis) and ids == sorted(ids)
    assert before - 1 <= millis[0] <= time.time() + 1


_PLAN_MODES = pytest.mark.parametrize(
    "plan_mode", ["force_custom_plan", WORKER_SERVER_SETTINGS["plan_cache_mode"]]
)
"""A plan made for the statement's values, and the plan the worker's connections use."""
_CLAIM_TYPES = ("text[]", "bigint", "text", "float8", "text[]", "int[]")
_APPLY_TYPES = ("task_write[]", "event_write[]")


async def _explain(
    conn: asyncpg.Connection, name: str, types: tuple[str, ...], args: tuple[Any, ...], mode: str
) -> str:
    """EXPLAIN ANALYZE of a named query run as a prepared statement under ``mode``."""
    await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
    await conn.execute(f"PREPARE explained AS {QUERIES[name]}")
    # EXECUTE takes no bind parameters: the values go in as literals.
    literals = [
        f"{await conn.fetchval(f'SELECT quote_nullable($1::{t}::text)', value)}::{t}"
        for t, value in zip(types, args, strict=True)
    ]
    rows = await conn.fetch(f"EXPLAIN (ANALYZE) EXECUTE explained ({', '.join(literals)})")
    await conn.execute("DEALLOCATE explained")
    return "\n".join(r[0] for r in rows)


@_PLAN_MODES
async def test_claim_query_plan_uses_the_claim_index(db: Database, plan_mode: str) -> None:
    """With a large backlog for several orchestrators the claim walks each one's index range
    in order and stops after the limit: no scan or sort of the whole backlog, whether planned
    for its values or once for all (as the worker's connections do)."""
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
        plan = await _explain(
            conn, "claim_tasks", _CLAIM_TYPES, (["demo", "other"], 10, "w", 30.0, [], []), plan_mode
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


@_PLAN_MODES
async def test_worker_writes_find_their_tasks_by_primary_key(db: Database, plan_mode: str) -> None:
    """The claim's update and the batch write look the picked tasks up by primary key even
    when the table is small enough that a planner would rather hash-join a scan of all of it
    (a cost that grows with every finished task)."""
    await db.execute(
        """INSERT INTO todolist (tenant_id, agent_orch, created_at, run_at)
           SELECT 'default', 'demo', t, t
           FROM generate_series(1, 3000) i, LATERAL (SELECT now() - i * interval '1 s') AS x(t)"""
    )
    await db.execute("ANALYZE todolist")
    async with db.transaction() as conn:
        claim_plan = await _explain(
            conn, "claim_tasks", _CLAIM_TYPES, (["demo"], 100, "w", 30.0, [], []), plan_mode
        )
        claimed = await conn.fetch(
            "SELECT id, fence FROM todolist WHERE status = 'IN_PROGRESS' ORDER BY id"
        )
        assert len(claimed) == 100
        ids = [r["id"] for r in claimed]
        apply_plan = await _explain(
            conn,
            "apply_batch",
            _APPLY_TYPES,
            (
                [(r["id"], r["fence"], 1, "DONE", '{"ok":true}', *[None] * 4) for r in claimed],
                [(i, 1, "CREW_FINISHED", "crew_completed", "crew", None, "{}") for i in ids],
            ),
            plan_mode,
        )
        assert await conn.fetchval("SELECT count(*) FROM todolist WHERE status = 'DONE'") == 100
    if int(await db.fetchval("SHOW server_version_num")) < 170000:
        # Older planners cost `id = ANY (...)` on a table this small as a filtered scan and
        # switch to the primary key as the table grows; only the outcome is checked there.
        return
    for plan in (claim_plan, apply_plan):
        assert "todolist_pkey" in plan, plan
        assert "Seq Scan on todolist" not in plan, plan


async def test_dead_letters_are_listed_from_an_index(db: Database) -> None:
    """Listing a tenant's FAILED tasks reads the partial index of the states people look for,
    not every finished task; the status is written into the statement so that a cached
    generic plan cannot ignore the index."""
    await db.execute(
        """INSERT INTO todolist (tenant_id, agent_orch, status, finished_at)
           SELECT 'default', 'demo', CASE WHEN i % 1000 = 0 THEN 'FAILED' ELSE 'DONE' END
                  ::todo_status, now()
           FROM generate_series(1, 20000) i"""
    )
    await db.execute("ANALYZE todolist")
    query = list_tasks_query(TaskStatus.FAILED)
    async with db.transaction() as conn:
        statement = await conn.prepare(query)
        for _ in range(8):  # past the point where Postgres may switch to a generic plan
            rows = await statement.fetch("default", None, None, None, None, 50, None)
            assert len(rows) == 20 and {r["status"] for r in rows} == {"FAILED"}
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN (ANALYZE) " + query, "default", None, None, None, None, 50, None
            )
        )
    assert "todolist_tenant_open" in plan, plan
    assert "Seq Scan on todolist" not in plan, plan


async def test_deleting_a_task_deletes_its_events(db: Database) -> None:
    task_id = await db.fetchval(
        "INSERT INTO todolist (tenant_id, agent_orch, last_seq) VALUES ('default', 'demo', 2) "
        "RETURNING id"
    )
    await db.execute(
        "INSERT INTO events (tenant_id, todo_id, seq, job_id, event_type, data) "
        "SELECT 'default', $1, s, 'j', 'task_working', '{}' FROM generate_series(1, 2) s",
        task_id,
    )
    await db.execute("DELETE FROM tenants WHERE id = 'default'")  # cascades to its tasks
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_truncating_tasks_truncates_events(db: Database) -> None:
    task_id = await db.fetchval(
        "INSERT INTO todolist (tenant_id, agent_orch, last_seq) VALUES ('default', 'demo', 1) "
        "RETURNING id"
    )
    await db.execute(
        "INSERT INTO events (tenant_id, todo_id, seq, job_id, event_type, data) "
        "VALUES ('default', $1, 1, 'j', 'task_working', '{}')",
        task_id,
    )
    await db.execute("TRUNCATE todolist CASCADE")
    assert await db.fetchval("SELECT count(*) FROM events") == 0


# The patterns of the name checks before migration 0007, which only made them cheaper.
_OLD_NAME_CHECKS = {
    ("events", "events_event_type_check"): "^[a-z][a-z0-9_]{0,63}$",
    ("todolist", "todolist_agent_orch_check"): "^[a-z0-9][a-z0-9_.:-]{0,63}$",
    ("todolist", "todolist_agent_profile_check"): "^[a-z0-9][a-z0-9_.:-]{0,63}$",
    ("tenants", "tenants_id_check"): "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
    ("orchestrators", "orchestrators_name_check"): "^[a-z0-9][a-z0-9_.:-]{0,63}$",
    ("chats", "chats_id_check"): "^[A-Za-z0-9_.:-]{1,128}$",
    ("chats", "chats_agent_orch_check"): "^[a-z0-9][a-z0-9_.:-]{0,63}$",
    ("agents", "agents_name_check"): "^[a-z0-9][a-z0-9_.:-]{0,63}$",
    ("agents", "agents_agent_orch_check"): "^[a-z0-9][a-z0-9_.:-]{0,63}$",
    ("mcp_servers", "mcp_servers_name_check"): "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
}
_NAME_SAMPLES = [
    "",
    "a",
    "A",
    "0",
    "_a",
    "-a",
    ".a",
    "a b",
    "é",
    "demo",
    "Demo",
    "task_working",
    "a.b:c-d_e",
    "a/b",
    "a\nb",
    *(c * n for c in "a0" for n in (63, 64, 65, 127, 128, 129)),
    *("a" + c * n for c in "_.:-" for n in (62, 63, 64)),
]


async def test_name_checks_accept_exactly_what_the_old_patterns_did(db: Database) -> None:
    """Each name CHECK, evaluated by Postgres on a name, agrees with its old bounded-repetition
    pattern on every sample (boundary lengths, every allowed and some refused characters)."""
    found = await db.fetch(
        "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def "
        "FROM pg_constraint WHERE contype = 'c' AND pg_get_constraintdef(oid) LIKE '%~%'"
        " AND conrelid::regclass::text = ANY($1::text[])",
        sorted({t for t, _ in _OLD_NAME_CHECKS}),
    )
    checks = {(r["tbl"], r["conname"]): r["def"] for r in found}
    assert set(_OLD_NAME_CHECKS) <= set(checks)
    for key, old_pattern in _OLD_NAME_CHECKS.items():
        definition = checks[key]
        assert "{" not in definition, f"{key} still uses bounded repetition: {definition}"
        column = re.search(r"\(\((\w+) ~", definition)
        assert column is not None, definition
        expression = definition.removeprefix("CHECK ").replace(column[1], "$1::text")
        for sample in _NAME_SAMPLES:
            new = await db.fetchval(f"SELECT {expression}", sample)
            old = await db.fetchval("SELECT $1::text ~ $2", sample, old_pattern)
            assert bool(new) == bool(old), (key, sample, definition)

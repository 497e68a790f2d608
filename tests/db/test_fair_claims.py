"""Fair claims against a real database: tenants interleave by weight, a tenant's priorities
order only its own tasks, an orchestrator's limit of running tasks holds under concurrent
claimers, and a tenant's rate limit holds."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

from processgpt.db.database import Database
from processgpt.db.worker_queries import SERVER_SETTINGS, WorkerQueries
from tests.db.test_migrate import _CLAIM_TYPES, _explain


async def _tenants(db: Database, *ids: str) -> None:
    await db.execute("INSERT INTO tenants (id) SELECT unnest($1::text[])", list(ids))


async def _backlog(
    db: Database, tenant: str, n: int, agent: str = "demo", priority: int = 0
) -> None:
    await db.execute(
        """INSERT INTO todolist (tenant_id, agent_orch, priority)
           SELECT $1, $2, $3 FROM generate_series(1, $4)""",
        tenant,
        agent,
        priority,
        n,
    )


async def _claim(queries: WorkerQueries, limit: int, **kw: object) -> Counter[str]:
    tasks = await queries.claim(["demo"], limit, "w", 30.0, **kw)  # type: ignore[arg-type]
    return Counter(t.tenant_id for t in tasks)


async def _running(db: Database) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT tenant_id, count(*) AS n FROM todolist WHERE status = 'IN_PROGRESS' GROUP BY 1"
    )
    return {r["tenant_id"]: r["n"] for r in rows}


async def test_a_backlog_does_not_starve_a_later_tenant(db: Database) -> None:
    """Tenant a's 500 tasks are older than b's, yet each claim takes them in turn; once a has
    tasks running, b's new tasks go first."""
    await _tenants(db, "a", "b")
    await _backlog(db, "a", 500)
    await _backlog(db, "b", 20)
    queries = WorkerQueries(db)
    assert await _claim(queries, 10) == {"a": 5, "b": 5}
    assert await _claim(queries, 4) == {"a": 2, "b": 2}
    # b's tasks all claimed: a's backlog takes the next claims whole
    await db.execute(
        "UPDATE todolist SET status = 'CANCELLED', finished_at = now() "
        "WHERE tenant_id = 'b' AND status = 'PENDING'"
    )
    assert await _claim(queries, 10) == {"a": 10}
    assert await _running(db) == {"a": 17, "b": 7}
    # b (7 running) submits three: a has 17 running, so b's three come first
    await _backlog(db, "b", 3)
    assert await _claim(queries, 4) == {"b": 3, "a": 1}


async def test_priorities_order_only_a_tenants_own_tasks(db: Database) -> None:
    await _tenants(db, "a", "b")
    await _backlog(db, "a", 50, priority=1000)
    await _backlog(db, "b", 50, priority=-1000)
    await _backlog(db, "a", 50, priority=0)
    queries = WorkerQueries(db)
    tasks = await queries.claim(["demo"], 6, "w", 30.0)
    assert Counter(t.tenant_id for t in tasks) == {"a": 3, "b": 3}
    ids = [t.id for t in tasks if t.tenant_id == "a"]
    priorities = await db.fetch("SELECT DISTINCT priority FROM todolist WHERE id = ANY($1)", ids)
    assert [r["priority"] for r in priorities] == [1000]


async def test_tenants_whose_tasks_all_wait_do_not_take_a_place_in_line(db: Database) -> None:
    """Twelve tenants whose only tasks are due tomorrow, one with work now: a claim of ten
    takes ten of its tasks (the waiting tenants would sort first: nothing running)."""
    waiting = [f"w{i:02}" for i in range(12)]
    await _tenants(db, *waiting, "z")
    await db.execute(
        """INSERT INTO todolist (tenant_id, agent_orch, run_at)
           SELECT unnest($1::text[]), 'demo', now() + interval '1 day'""",
        waiting,
    )
    await db.execute("UPDATE tenants SET weight = 1000 WHERE id = ANY($1)", waiting)
    await _backlog(db, "z", 50)
    assert await _claim(WorkerQueries(db), 10) == {"z": 10}


async def test_weights_set_each_tenants_share(db: Database) -> None:
    await _tenants(db, "a", "b", "c")
    await db.execute("UPDATE tenants SET weight = 3 WHERE id = 'a'")
    for tenant in ("a", "b"):
        await _backlog(db, tenant, 200)
    queries = WorkerQueries(db)
    # keys (running + k) / weight: a 1/3, 2/3, 1, 4/3, ... b 1, 2, ...
    assert await _claim(queries, 8) == {"a": 6, "b": 2}
    # nothing finished: the shares of what runs stay 3:1 claim after claim
    for _ in range(5):
        await _claim(queries, 4)
    assert await _running(db) == {"a": 21, "b": 7}
    # a third tenant of weight 1 with nothing running is served first
    await _backlog(db, "c", 10)
    assert await _claim(queries, 5) == {"c": 5}


async def test_an_agent_limit_holds_under_concurrent_claimers(db: Database) -> None:
    """Ten claims at once on ten connections, each asking for three tasks of an orchestrator
    limited to five running tasks: five run, however the claims interleave."""
    await _tenants(db, "a", "b")
    await _backlog(db, "a", 100)
    await _backlog(db, "b", 100)
    await _backlog(db, "a", 100, agent="free")
    queries = WorkerQueries(db)
    limits = {"demo": 5}
    for _ in range(3):
        claims = await asyncio.gather(
            *(queries.claim(["demo", "free"], 3, f"w{i}", 30.0, limits) for i in range(10))
        )
        got = Counter(t.agent_orch for c in claims for t in c)
        running = await db.fetchval(
            "SELECT count(*) FROM todolist WHERE status = 'IN_PROGRESS' AND agent_orch = 'demo'"
        )
        assert running == 5, (got, running)
        # the limit leaves room for the unlimited orchestrator's tasks
        assert got["free"] > 0
    # a finished task frees room for exactly one more
    await db.execute(
        """UPDATE todolist SET status = 'DONE', finished_at = now(), consumer = NULL,
                  lease_until = NULL
           WHERE id = (SELECT id FROM todolist WHERE status = 'IN_PROGRESS'
                       AND agent_orch = 'demo' LIMIT 1)"""
    )
    tasks = await queries.claim(["demo"], 3, "w", 30.0, limits)
    assert len(tasks) == 1
    # without a limit the same claim takes all three
    assert len(await queries.claim(["demo"], 3, "w", 30.0)) == 3


async def test_a_tenants_rate_limit_holds(db: Database) -> None:
    """Tenant a may start 4 tasks a second (bursts of 4); b has no limit. Concurrent claims
    take a's burst once; after that a's starts follow the rate."""
    await _tenants(db, "a", "b")
    await db.execute("UPDATE tenants SET max_tasks_per_second = 4 WHERE id = 'a'")
    await _backlog(db, "a", 500)
    await _backlog(db, "b", 500)
    queries = WorkerQueries(db)
    start = time.monotonic()
    claims = await asyncio.gather(*(_claim(queries, 10) for _ in range(8)))
    first = sum((c for c in claims), Counter())
    assert first["a"] == 4, first  # the burst, once, however many claims raced for it
    assert first["b"] > 40  # b is not held back by a's limit
    started = first["a"]
    while time.monotonic() - start < 1.6:
        started += (await _claim(queries, 10))["a"]
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - start
    # the burst plus what the rate refilled meanwhile (the last token may be half made)
    assert 4 + int(4 * 1.6) - 1 <= started <= 4 + 4 * elapsed + 1e-9, (started, elapsed)
    # lifting the limit (through the API's query) refills nothing it owes: all at once now
    await db.execute("UPDATE tenants SET max_tasks_per_second = NULL WHERE id = 'a'")
    assert (await _claim(queries, 10))["a"] >= 5


async def test_the_fair_claim_reads_indexes_only_with_a_large_backlog(db: Database) -> None:
    """100k pending tasks of one tenant, a few of others, the worker's plan (generic) and a
    custom one: the tenants with work come from the claim index (an index-only skip), each
    tenant's candidates from its own range stopping at the limit; no sequential scan of
    todolist, no sort of the backlog."""
    await _tenants(db, "a", "b", "c")
    await _backlog(db, "a", 100_000)
    await _backlog(db, "a", 20_000, agent="other")
    await _backlog(db, "b", 3)
    await _backlog(db, "c", 3, agent="other")
    await db.execute("ANALYZE todolist")
    for mode in ("force_custom_plan", SERVER_SETTINGS["plan_cache_mode"]):
        async with db.transaction() as conn:
            plan = await _explain(
                conn, "claim_tasks", _CLAIM_TYPES, (["demo"], 10, "w", 30.0, ["demo"], [100]), mode
            )
        assert "Seq Scan on todolist" not in plan, plan
        skips = [
            line for line in plan.splitlines() if "Index Only Scan using todolist_claim" in line
        ]
        assert len(skips) == 2, plan  # the first tenant of the orchestrator, then each next one
        ranges = [line for line in plan.splitlines() if "Index Scan using todolist_claim" in line]
        assert ranges, plan
        rows = [float(m) for line in ranges for m in re.findall(r"actual [^)]*rows=([\d.]+)", line)]
        assert rows and all(r <= 10 for r in rows), plan

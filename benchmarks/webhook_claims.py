"""What the fair webhook claim (queries/webhooks.sql claim_deliveries, migration 0031) and the
delivery loop's wake-up query cost, as the number of enabled endpoints and one endpoint's
backlog grow.

Setup: ``--tenants`` tenants with ``--endpoints-per-tenant`` enabled endpoints each, every
endpoint with one due delivery, and one endpoint with ``--backlog`` due deliveries besides
(the black hole of a slow tenant). Measured per variant over ``--rounds`` claims, each rolled
back (the same state every time): the claim of 16 deliveries (the advisory lock and the
statement), and ``seconds_until_next_delivery``; printed: median milliseconds and the shared
buffers the claim statement touched (EXPLAIN ANALYZE BUFFERS, once). A measuring aid: on a
shared machine the times are noisy, the buffer counts are not.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from _common import (
    fresh_database,
    open_processgpt,
    parser,
    postgres_server,
    print_table,
    run,
    write_results,
)

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES


async def _setup(db: Database, tenants: int, per_tenant: int, backlog: int) -> None:
    await db.execute("TRUNCATE webhook_deliveries, webhook_endpoints CASCADE")
    await db.execute(
        "INSERT INTO tenants (id) SELECT 't' || i FROM generate_series(1, $1) i "
        "ON CONFLICT DO NOTHING",
        tenants,
    )
    await db.execute(
        "INSERT INTO webhook_endpoints (tenant_id, url, secret) "
        "SELECT 't' || i, 'https://example.com/' || i || '/' || j, 'x' "
        "FROM generate_series(1, $1) i, generate_series(1, $2) j",
        tenants,
        per_tenant,
    )
    await db.execute(
        "INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_type, payload) "
        "SELECT tenant_id, id, 'task.completed', '{}' FROM webhook_endpoints"
    )
    await db.execute(
        "INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_type, payload, "
        "next_attempt_at) SELECT e.tenant_id, e.id, 'task.completed', '{}', "
        "now() - interval '1 hour' FROM (SELECT * FROM webhook_endpoints ORDER BY id LIMIT 1) e, "
        "generate_series(1, $1)",
        backlog,
    )
    await db.execute("ANALYZE webhook_deliveries; ANALYZE webhook_endpoints")


async def _measure(db: Database, rounds: int) -> dict[str, Any]:
    claim_ms: list[float] = []
    next_ms: list[float] = []
    claimed = 0
    async with db.pool.acquire() as conn:
        for _ in range(rounds):
            tr = conn.transaction()
            await tr.start()
            began = time.perf_counter()
            await conn.execute(QUERIES["lock_delivery_claims"])
            rows = await conn.fetch(QUERIES["claim_deliveries"], 16, 60.0, 4, 8)
            claim_ms.append((time.perf_counter() - began) * 1000)
            claimed = len(rows)
            began = time.perf_counter()
            await conn.fetchval(QUERIES["seconds_until_next_delivery"], 4, 8)
            next_ms.append((time.perf_counter() - began) * 1000)
            await tr.rollback()
        tr = conn.transaction()
        await tr.start()
        plan = await conn.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + QUERIES["claim_deliveries"],
            16,
            60.0,
            4,
            8,
        )
        await tr.rollback()
    top = json.loads(plan)[0]["Plan"] if isinstance(plan, str) else plan[0]["Plan"]
    buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    return {
        "claim_ms": statistics.median(claim_ms),
        "next_ms": statistics.median(next_ms),
        "claimed": claimed,
        "claim_buffers": buffers,
    }


async def main(args: Any) -> None:
    variants = [
        (10, 1, 0),
        (10, 1, args.backlog),
        (100, 10, 0),
        (100, 10, args.backlog),
    ]
    rows = []
    results: dict[str, Any] = {"rounds": args.rounds, "variants": []}
    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        db = await open_processgpt(dsn)
        try:
            for tenants, per_tenant, backlog in variants:
                await _setup(db, tenants, per_tenant, backlog)
                got = await _measure(db, args.rounds)
                endpoints = tenants * per_tenant
                rows.append(
                    (
                        endpoints,
                        backlog,
                        got["claimed"],
                        f"{got['claim_ms']:.2f}",
                        got["claim_buffers"],
                        f"{got['next_ms']:.2f}",
                    )
                )
                results["variants"].append({"endpoints": endpoints, "backlog": backlog, **got})
        finally:
            await db.close()
    print_table(
        f"fair webhook claim of 16 (caps 4 per endpoint, 8 per tenant), median of {args.rounds}",
        ["endpoints", "backlog", "claimed", "claim ms", "claim buffers", "wake-up query ms"],
        rows,
    )
    write_results("webhook_claims", results)


if __name__ == "__main__":
    p = parser(__doc__, timeout=900)
    p.add_argument("--backlog", type=int, default=100_000, help="one endpoint's due backlog")
    p.add_argument("--rounds", type=int, default=20, help="claims per variant (default 20)")
    parsed = p.parse_args()
    run(main(parsed), parsed.timeout)

"""What migration 0024's triggers cost the statements that end tasks.

Every status write that ends a task (DONE, FAILED) or makes a person's work item fires
``todolist_emit``: a tenant with no webhook endpoint pays one lookup of its endpoints, a
tenant with endpoints one outbox row per endpoint (and a notification for the kinds people
are told about). Measured here on the statement a worker's writer uses in shape (one UPDATE
of ``--batch`` tasks' status to DONE), for ``--tasks`` tasks per variant and round:

* ``off``: the trigger disabled (what the statement cost before migration 0024);
* ``on, no endpoint``: the trigger, and the tenant has no endpoint (the common case);
* ``on, 1 endpoint``: every completion writes one delivery row.

The variants alternate within each of ``--rounds`` rounds, each on fresh PENDING rows;
printed: median microseconds per ended task over the rounds, and the cost over ``off``. A
measuring aid, not a benchmark with a target; on a shared machine the figures are noisy.
"""

from __future__ import annotations

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

VARIANTS = ("off", "on, no endpoint", "on, 1 endpoint")


async def _one(db: Database, variant: str, tasks: int, batch: int) -> float:
    """Seconds spent in the UPDATE statements that end ``tasks`` fresh tasks."""
    tenant = {"off": "t_off", "on, no endpoint": "t_none", "on, 1 endpoint": "t_hook"}[variant]
    await db.execute("DELETE FROM todolist WHERE tenant_id = $1", tenant)
    ids = [
        r["id"]
        for r in await db.fetch(
            "INSERT INTO todolist (tenant_id, agent_orch, query, run_at) "
            "SELECT $1, 'bench', 'x', now() + interval '1 day' FROM generate_series(1, $2) "
            "RETURNING id",
            tenant,
            tasks,
        )
    ]
    spent = 0.0
    async with db.pool.acquire() as conn:
        if variant == "off":
            await conn.execute("ALTER TABLE todolist DISABLE TRIGGER todolist_emit_update")
        try:
            for start in range(0, len(ids), batch):
                chunk = ids[start : start + batch]
                began = time.perf_counter()
                await conn.execute(
                    "UPDATE todolist SET status = 'DONE', finished_at = now(), "
                    "output = '{\"ok\": true}', updated_at = now() WHERE id = ANY($1::uuid[])",
                    chunk,
                )
                spent += time.perf_counter() - began
        finally:
            if variant == "off":
                await conn.execute("ALTER TABLE todolist ENABLE TRIGGER todolist_emit_update")
    return spent


async def main(args: Any) -> None:
    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        db = await open_processgpt(dsn)
        try:
            for tenant in ("t_off", "t_none", "t_hook"):
                await db.execute("INSERT INTO tenants (id) VALUES ($1)", tenant)
            await db.execute(
                "INSERT INTO webhook_endpoints (tenant_id, url, secret) "
                "VALUES ('t_hook', 'https://example.com/hook', 'x')"
            )
            per_task: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for round_no in range(args.rounds):
                order = VARIANTS[round_no % 3 :] + VARIANTS[: round_no % 3]
                for variant in order:
                    seconds = await _one(db, variant, args.tasks, args.batch)
                    per_task[variant].append(seconds / args.tasks * 1e6)
            deliveries = await db.fetchval("SELECT count(*) FROM webhook_deliveries")
        finally:
            await db.close()
    base = statistics.median(per_task["off"])
    rows = []
    results: dict[str, Any] = {"tasks": args.tasks, "batch": args.batch, "rounds": args.rounds}
    for variant in VARIANTS:
        med = statistics.median(per_task[variant])
        rows.append((variant, med, med - base, f"{(med / base - 1) * 100:+.0f}%"))
        results[variant] = {"median_us_per_task": med, "samples_us": per_task[variant]}
    print_table(
        f"ending tasks with UPDATE ... status = 'DONE' ({args.tasks} tasks, batches of "
        f"{args.batch}, median of {args.rounds} rounds)",
        ["variant", "µs per task", "µs over off", "vs off"],
        rows,
    )
    print(f"delivery rows written by the '1 endpoint' variant: {deliveries}")
    write_results("notification_triggers", results)


if __name__ == "__main__":
    p = parser(__doc__, timeout=600)
    p.add_argument("--tasks", type=int, default=5000, help="tasks ended per variant and round")
    p.add_argument("--batch", type=int, default=100, help="tasks per UPDATE (default 100)")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parsed = p.parse_args()
    run(main(parsed), parsed.timeout)

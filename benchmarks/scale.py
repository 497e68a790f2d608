"""Speed at scale: claim-to-done throughput and pickup latency with 0, 1M and 10M finished
tasks (3 events each) in the tables, and the cost of the queue gauges.

Two databases on one server: an empty one and a loaded one. The loaded one is filled with
SQL (``INSERT ... SELECT generate_series``, in chunks) up to each size of ``--sizes`` in turn
(finished tasks of the last 30 days: 93% DONE, 5% FAILED, 2% CANCELLED, each with three events,
like a real no-op run), then VACUUM ANALYZEd (as autovacuum would leave it). At each size the
two databases are measured in alternating order for ``--rounds`` rounds, so that a slow spell of
the machine does not always hit the same side:

* throughput: ``--tasks`` no-op tasks bulk-inserted, one in-process worker (concurrency
  ``--concurrency``) drains them; rate = tasks / (worker start -> a 50 ms poll sees none open).
  The measured tasks are deleted afterwards (and the tables vacuumed), so sizes stay exact;
* pickup latency: an idle worker, ``--pickups`` tasks submitted one at a time;
  latency = executor start - just before the submit;
* CPU: Postgres CPU per task during the throughput run (the server's processes, which only
  this benchmark uses): steadier than wall time on a shared machine;
* gauges: the statements behind the queue gauges (the metrics snapshot every ``/metrics``
  shows, a tenant's queue summary) with 100 pending tasks, timed, and their plans checked for
  a sequential scan of todolist.

Ratios are loaded / empty of the medians over rounds. Target (issue 15): throughput >= 1/1.2
of the empty database's, pickup p50 and p99 <= 1.2x.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from _common import (
    CpuMeter,
    NoopExecutor,
    fresh_database,
    has_open_tasks,
    insert_tasks,
    open_processgpt,
    parser,
    postgres_server,
    print_table,
    run,
    server_info,
    summarize,
    wait_until,
    write_results,
)
from process_profile import _server_with_pgss

from processgpt.agents.task_runner import A2ATaskRunner
from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskSubmission
from processgpt.runtime.serving import tune_gc_for_serving
from processgpt.runtime.worker import Worker, WorkerOptions

NAME = "scale"
TARGET_FACTOR = 1.2
FILL_CHUNK = 250_000

FILL = """
WITH made AS (
    INSERT INTO todolist (tenant_id, agent_orch, query, input, status, attempts, output, error,
                          created_at, started_at, finished_at, updated_at, last_seq)
    SELECT 'default', 'noop', 'finished task ' || i, jsonb_build_object('i', i),
           CASE WHEN i % 50 = 7 THEN 'CANCELLED'
                WHEN i % 20 = 3 THEN 'FAILED' ELSE 'DONE' END::todo_status,
           1,
           CASE WHEN i % 20 = 3 OR i % 50 = 7 THEN NULL ELSE '{"ok": true}'::jsonb END,
           CASE WHEN i % 20 = 3 AND i % 50 <> 7 THEN '{"reason": "failed"}'::jsonb END,
           ts, ts + interval '1 second', ts + interval '2 seconds', ts + interval '2 seconds', 3
    FROM (SELECT i, now() - interval '30 days' + make_interval(secs => i * $3::float8) AS ts
          FROM generate_series($1::bigint, $2::bigint) i) s
    RETURNING id, tenant_id
)
INSERT INTO events (tenant_id, todo_id, seq, job_id, event_type, data)
SELECT made.tenant_id, made.id, s, made.id::text,
       (ARRAY['task_working', 'task_working', 'crew_completed'])[s],
       jsonb_build_object('text', 'a line of the agent''s work, about this long', 'n', s)
FROM made CROSS JOIN generate_series(1, 3) s
"""

GAUGES = {
    "metrics_snapshot": (QUERIES["compute_metrics_snapshot"], (["noop"],)),
    "tenant_queue_summary": (QUERIES["tenant_queue_summary"], ("default",)),
}
"""The statements behind the queue gauges: the deployment snapshot every `/metrics` shows
(one process computes it per interval) and a tenant's queue summary (its console)."""


async def fill(db: Database, start: int, end: int) -> float:
    """Add finished tasks number ``start``..``end - 1`` (and their events); seconds taken."""
    t0 = time.perf_counter()
    span = 30 * 86400 / 10_000_000  # 10M tasks spread over 30 days
    for first in range(start, end, FILL_CHUNK):
        last = min(first + FILL_CHUNK, end) - 1
        await db.execute(FILL, first, last, span)
        print(f"  filled {last + 1:,} finished tasks", flush=True)
    await db.execute("VACUUM (ANALYZE) todolist")
    await db.execute("VACUUM (ANALYZE) events")
    await db.execute("CHECKPOINT")
    return time.perf_counter() - t0


async def sizes_of(db: Database) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM todolist) AS tasks, (SELECT count(*) FROM events) AS events,"
        " pg_total_relation_size('todolist') AS todolist_bytes,"
        " pg_total_relation_size('events') AS events_bytes"
    )
    assert row is not None
    return dict(row)


STATEMENTS = """
SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS statement, calls,
       total_exec_time AS exec_ms
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC LIMIT 8
"""


async def throughput(db: Database, n: int, concurrency: int, statements: bool) -> dict[str, Any]:
    marker = await db.fetchval("SELECT processgpt_uuid_v7()")
    await insert_tasks(db, n, "noop")
    worker = Worker(
        db,
        {"noop": A2ATaskRunner(NoopExecutor())},
        WorkerOptions(concurrency=concurrency, shutdown_grace=5),
    )

    async def all_done() -> bool:
        return not await has_open_tasks(db)

    if statements:
        await db.execute("SELECT pg_stat_statements_reset()")
    meter = await CpuMeter.for_server(db.dsn)
    meter.start()
    t0 = time.perf_counter()
    runner = asyncio.create_task(worker.run())
    try:
        t_end = await wait_until(all_done, alive=runner)
        meter.stop()
    finally:
        worker.stop()
        await runner
    top = [dict(r) for r in await db.fetch(STATEMENTS)] if statements else []
    done = await db.fetchval(
        "SELECT count(*) FROM todolist WHERE id >= $1 AND status = 'DONE'", marker
    )
    if done != n:
        raise RuntimeError(f"{done} of {n} tasks are DONE: not a valid run")
    await _forget(db, marker)
    cpu = meter.per_task(n)
    return {
        "rate": n / (t_end - t0),
        "worker_cpu_us_per_task": cpu["python_cpu_us_per_task"],
        "postgres_cpu_us_per_task": cpu["postgres_cpu_us_per_task"],
        "statements": [{**t, "exec_us_per_task": t["exec_ms"] * 1000 / n} for t in top],
    }


async def pickup(db: Database, n: int, warmup: int) -> dict[str, float]:
    marker = await db.fetchval("SELECT processgpt_uuid_v7()")
    starts: dict[str, float] = {}
    started = asyncio.Event()

    def on_start(task_id: str) -> None:
        starts[task_id] = time.perf_counter()
        started.set()

    worker = Worker(
        db,
        {"noop": A2ATaskRunner(NoopExecutor(on_start=on_start))},
        WorkerOptions(concurrency=10, shutdown_grace=5),
    )
    runner = asyncio.create_task(worker.run())
    repo = TaskRepository(db)
    known = frozenset({"noop"})
    latencies: list[float] = []
    try:
        await worker.started.wait()
        await asyncio.sleep(0.3)
        for i in range(warmup + n):
            started.clear()
            sub = TaskSubmission(agent_orch="noop", query="x", input={"i": i})
            t_submit = time.perf_counter()
            task, _ = await repo.submit("default", sub, known_agents=known)
            while str(task.id) not in starts:
                await asyncio.wait_for(started.wait(), timeout=10)
                started.clear()
            if i >= warmup:
                latencies.append((starts[str(task.id)] - t_submit) * 1000)
            await asyncio.sleep(random.uniform(0, 0.005))

        async def all_done() -> bool:
            return not await has_open_tasks(db)

        await wait_until(all_done, alive=runner)
    finally:
        worker.stop()
        await runner
    await _forget(db, marker)
    return summarize(latencies)


async def gauges(db: Database) -> dict[str, Any]:
    marker = await db.fetchval("SELECT processgpt_uuid_v7()")
    await insert_tasks(db, 100, "nobody")  # pending: no worker serves it
    found: dict[str, Any] = {}
    try:
        for name, (sql, params) in GAUGES.items():
            explained = await db.fetch(f"EXPLAIN (ANALYZE) {sql}", *params)
            plan = "\n".join(r[0] for r in explained)
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                await db.fetch(sql, *params)
                times.append((time.perf_counter() - t0) * 1000)
            found[name] = {
                "ms_p50": statistics.median(times),
                "seq_scan_of_todolist": "Seq Scan on todolist" in plan,
                "plan": plan,
            }
    finally:
        await _forget(db, marker)
    return found


async def _forget(db: Database, marker: Any) -> None:
    """Delete the tasks a measurement made (ids are time-ordered: those from ``marker`` on),
    their events with them, and vacuum, so the next measurement sees the same tables."""
    await db.execute("DELETE FROM todolist WHERE id >= $1", marker)
    await db.execute("VACUUM todolist")
    await db.execute("VACUUM events")


async def measure(db: Database, args: argparse.Namespace) -> dict[str, Any]:
    result = await throughput(db, args.tasks, args.concurrency, args.statements)
    latency = await pickup(db, args.pickups, args.warmup)
    return {**result, "pickup_ms": latency}


async def main(args: argparse.Namespace) -> None:
    tune_gc_for_serving()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    levels: list[dict[str, Any]] = []
    async with (
        _server(args) as server,
        fresh_database(server, "pgpt_scale_empty") as empty_dsn,
        fresh_database(server, "pgpt_scale_loaded") as loaded_dsn,
    ):
        empty = await open_processgpt(empty_dsn, max_size=10)
        loaded = await open_processgpt(loaded_dsn, max_size=10)
        if args.statements:
            for db in (empty, loaded):
                await db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        try:
            have = 0
            for size in sizes:
                fill_s = 0.0
                if size > have:
                    print(f"filling the loaded database to {size:,} finished tasks", flush=True)
                    fill_s = await fill(loaded, have, size)
                    have = size
                rounds: dict[str, list[dict[str, Any]]] = {"empty": [], "loaded": []}
                for round_no in range(args.rounds):
                    order = [("empty", empty), ("loaded", loaded)]
                    if round_no % 2:
                        order.reverse()
                    for label, db in order:
                        result = await measure(db, args)
                        rounds[label].append(result)
                        print(
                            f"  size {size:,} round {round_no + 1} {label}: "
                            f"{result['rate']:,.0f} tasks/s, pickup p50 "
                            f"{result['pickup_ms']['p50']:.2f} ms p99 "
                            f"{result['pickup_ms']['p99']:.2f} ms; CPU µs/task worker "
                            f"{result['worker_cpu_us_per_task']:.0f} Postgres "
                            f"{result['postgres_cpu_us_per_task']:.0f}",
                            flush=True,
                        )
                levels.append(
                    {
                        "finished_tasks": size,
                        "fill_s": fill_s,
                        "tables": await sizes_of(loaded),
                        "rounds": rounds,
                        "empty": _medians(rounds["empty"]),
                        "loaded": _medians(rounds["loaded"]),
                        "gauges_loaded": await gauges(loaded),
                        "gauges_empty": await gauges(empty),
                    }
                )
            info = await server_info(server)
        finally:
            await empty.close()
            await loaded.close()
    report(levels, args, info)


@contextlib.asynccontextmanager
async def _server(args: argparse.Namespace) -> AsyncIterator[str]:
    """The server: ``--database-url``'s, or an embedded one (with pg_stat_statements loaded
    when ``--statements`` asks for the statements' times)."""
    if args.database_url or not args.statements:
        async with postgres_server(args.database_url) as dsn:
            yield dsn
        return
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    with tempfile.TemporaryDirectory(prefix="pgpt-scale-") as tmp:
        pg = await _server_with_pgss(Path(tmp), explain=False)
        try:
            yield pg.dsn
        finally:
            await asyncio.to_thread(pg.stop)


def _medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "rate": statistics.median(r["rate"] for r in runs),
        "pickup_p50_ms": statistics.median(r["pickup_ms"]["p50"] for r in runs),
        "pickup_p99_ms": statistics.median(r["pickup_ms"]["p99"] for r in runs),
        "postgres_cpu_us_per_task": statistics.median(r["postgres_cpu_us_per_task"] for r in runs),
    }


def report(levels: list[dict[str, Any]], args: argparse.Namespace, info: dict[str, Any]) -> None:
    rows = []
    meets = True
    for level in levels:
        e, lo = level["empty"], level["loaded"]
        rate_ratio = lo["rate"] / e["rate"]
        p50_ratio = lo["pickup_p50_ms"] / e["pickup_p50_ms"]
        p99_ratio = lo["pickup_p99_ms"] / e["pickup_p99_ms"]
        level["ratios"] = {"rate": rate_ratio, "pickup_p50": p50_ratio, "pickup_p99": p99_ratio}
        ok = (
            rate_ratio >= 1 / TARGET_FACTOR
            and p50_ratio <= TARGET_FACTOR
            and p99_ratio <= TARGET_FACTOR
        )
        level["meets_target"] = ok
        meets = meets and ok
        gauge_ms = max(g["ms_p50"] for g in level["gauges_loaded"].values())
        seq = any(g["seq_scan_of_todolist"] for g in level["gauges_loaded"].values())
        rows.append(
            [
                f"{level['finished_tasks']:,}",
                f"{level['tables']['events']:,}",
                e["rate"],
                lo["rate"],
                rate_ratio,
                e["pickup_p50_ms"],
                lo["pickup_p50_ms"],
                p50_ratio,
                e["pickup_p99_ms"],
                lo["pickup_p99_ms"],
                p99_ratio,
                e["postgres_cpu_us_per_task"],
                lo["postgres_cpu_us_per_task"],
                gauge_ms,
                "yes" if seq else "no",
                "meets" if ok else "MISSES",
            ]
        )
    print_table(
        f"scale: empty vs loaded database, medians of {args.rounds} alternating rounds "
        f"({args.tasks} no-op tasks at concurrency {args.concurrency}; {args.pickups} pickups)",
        [
            "finished tasks",
            "events",
            "tasks/s empty",
            "tasks/s loaded",
            "ratio",
            "p50 ms empty",
            "p50 ms loaded",
            "ratio",
            "p99 ms empty",
            "p99 ms loaded",
            "ratio",
            "PG µs/task empty",
            "PG µs/task loaded",
            "gauges ms (max)",
            "gauge seq scan",
            f"target {TARGET_FACTOR:g}x",
        ],
        rows,
    )
    for level in levels:
        _print_statements(level)
    write_results(
        NAME,
        {
            "params": {
                "sizes": [level["finished_tasks"] for level in levels],
                "tasks": args.tasks,
                "concurrency": args.concurrency,
                "pickups": args.pickups,
                "rounds": args.rounds,
            },
            "target_factor": TARGET_FACTOR,
            "levels": levels,
            "meets_target": meets,
            "environment": info,
        },
    )


def _print_statements(level: dict[str, Any]) -> None:
    """The busiest statements of the last throughput run on each side, µs per task."""
    last = {side: level["rounds"][side][-1]["statements"] for side in ("empty", "loaded")}
    if not last["loaded"]:
        return
    empty = {s["statement"]: s["exec_us_per_task"] for s in last["empty"]}
    print_table(
        f"busiest statements at {level['finished_tasks']:,} finished tasks (last round, "
        "pg_stat_statements exec time per task, µs)",
        ["statement", "calls", "empty", "loaded"],
        [
            [
                s["statement"],
                s["calls"],
                empty.get(s["statement"], float("nan")),
                s["exec_us_per_task"],
            ]
            for s in last["loaded"]
        ],
    )


if __name__ == "__main__":
    p = parser(__doc__, timeout=14_400)
    p.add_argument(
        "--sizes",
        default="0,1000000,10000000",
        help="finished tasks in the loaded database, comma list (default 0,1000000,10000000)",
    )
    p.add_argument("--tasks", type=int, default=10_000, help="tasks per throughput run")
    p.add_argument("--concurrency", type=int, default=50, help="worker concurrency")
    p.add_argument("--pickups", type=int, default=300, help="pickups measured per run")
    p.add_argument("--warmup", type=int, default=20, help="pickups run first, not counted")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per size")
    p.add_argument(
        "--statements",
        action="store_true",
        help="load pg_stat_statements in the embedded server and print the busiest statements "
        "of each side's last throughput run",
    )
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

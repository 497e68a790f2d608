"""Where a process step's time goes: one in-process worker drains no-op work under cProfile,
with pg_stat_statements on the embedded Postgres (a profiling aid, not a benchmark).

``--kind tasks`` drains ``--instances`` × 5 independent no-op tasks; ``seq5`` and ``fork4``
drain ``--instances`` instances of process_throughput's definitions. Prints the worker's
CPU and Postgres's CPU per task, the statements by total execution time, and the Python
functions by own time (``--sort tottime``) or cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from _common import (
    CpuMeter,
    NoopExecutor,
    fresh_database,
    has_open_tasks,
    insert_tasks,
    open_processgpt,
    parser,
    run,
    wait_until,
)
from process_throughput import AGENT, fork_join, publish, sequential, start_instances

from processgpt.agents.task_runner import A2ATaskRunner
from processgpt.db.embedded import EmbeddedPostgres
from processgpt.runtime.process_service import ProcessService
from processgpt.runtime.serving import tune_gc_for_serving
from processgpt.runtime.worker import Worker, WorkerOptions


async def _server_with_pgss(tmp: Path, explain: bool) -> EmbeddedPostgres:
    pg = await asyncio.to_thread(EmbeddedPostgres, tmp)
    conn = await asyncpg.connect(pg.dsn)
    try:
        await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        await conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
        if explain:
            await conn.execute(
                "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements', 'auto_explain'"
            )
            for name, value in (
                ("auto_explain.log_min_duration", "20ms"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_buffers", "on"),
                ("auto_explain.log_nested_statements", "on"),
                ("log_parameter_max_length", "0"),
                ("auto_explain.log_triggers", "on"),
            ):
                await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    finally:
        await conn.close()
    await asyncio.to_thread(pg.stop)
    return await asyncio.to_thread(EmbeddedPostgres, tmp)


async def main(args: argparse.Namespace) -> None:
    tune_gc_for_serving()
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    n = args.instances
    with tempfile.TemporaryDirectory(prefix="pgpt-prof-") as tmp:
        pg = await _server_with_pgss(Path(tmp), bool(args.explain))
        try:
            async with fresh_database(pg.dsn) as dsn:
                db = await open_processgpt(dsn, max_size=10)
                try:
                    await db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                    await publish(db, sequential("seq5", 5))
                    await publish(db, fork_join("fork4", 4))
                    if args.kind == "tasks":
                        tasks = 5 * n
                        await insert_tasks(db, tasks, AGENT)
                    else:
                        tasks = n * (5 if args.kind == "seq5" else 4)
                        await start_instances(ProcessService(db), args.kind, n, clients=8)
                    await db.execute("SELECT pg_stat_statements_reset()")
                    await _drain(db, pg.dsn, args, tasks)
                    await _statements(db, tasks, args.top)
                    if args.explain:
                        log_text = (Path(tmp) / "pgdata" / "log").read_text()
                        Path(args.explain).write_text(log_text)
                finally:
                    await db.close()
        finally:
            await asyncio.to_thread(pg.stop)


async def _drain(db: Any, server: str, args: argparse.Namespace, tasks: int) -> None:
    worker = Worker(
        db,
        {AGENT: A2ATaskRunner(NoopExecutor())},
        WorkerOptions(concurrency=args.concurrency, shutdown_grace=5),
    )

    async def all_done() -> bool:
        return not await has_open_tasks(db)

    meter = await CpuMeter.for_server(server)
    profile = cProfile.Profile() if args.cprofile else None
    meter.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if profile is not None:
        profile.enable()
    runner = asyncio.create_task(worker.run())
    try:
        t_end = await wait_until(all_done, alive=runner)
    finally:
        if profile is not None:
            profile.disable()
        meter.stop()
        cpu = time.process_time() - cpu0
        worker.stop()
        await runner
    wall = t_end - t0
    print(
        f"{args.kind}: {tasks} tasks in {wall:.2f} s ({tasks / wall:,.0f}/s); worker CPU "
        f"{cpu / tasks * 1e6:.0f} µs/task, Postgres CPU {meter.postgres_s / tasks * 1e6:.0f} "
        f"µs/task; {worker.writer_batches} write batches"
    )
    if profile is not None:
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats(args.sort).print_stats(args.top)
        if args.callers:
            stats.print_callers(args.callers)
        print(out.getvalue())


async def _statements(db: Any, tasks: int, top: int) -> None:
    rows = await db.fetch(
        "SELECT calls, total_exec_time, total_plan_time, rows, "
        "left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS q "
        "FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1",
        top,
    )
    print(f"{'calls':>7} {'exec ms':>9} {'µs/task':>8} {'plan ms':>8} {'rows':>7}  statement")
    for r in rows:
        print(
            f"{r['calls']:>7} {r['total_exec_time']:>9.0f} "
            f"{r['total_exec_time'] * 1000 / tasks:>8.1f} {r['total_plan_time']:>8.0f} "
            f"{r['rows']:>7}  {r['q']}"
        )


if __name__ == "__main__":
    p = parser(__doc__, timeout=900)
    p.add_argument("--kind", choices=("tasks", "seq5", "fork4"), default="seq5")
    p.add_argument("--instances", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--cprofile", action="store_true")
    p.add_argument(
        "--callers", default="", help="with --cprofile: print who calls functions matching this"
    )
    p.add_argument("--sort", default="tottime")
    p.add_argument("--top", type=int, default=40)
    p.add_argument(
        "--explain", help="auto_explain statements over 20 ms; the server's log to this file"
    )
    arguments = p.parse_args()
    if arguments.database_url:
        p.error("--database-url: this script restarts its own embedded server with its libraries")
    run(main(arguments), arguments.timeout)

"""I/O-bound task throughput: each task waits 1 s (like an LLM call) between its status events
and its final artifact; one in-process worker runs up to ``--concurrency`` at once.

N tasks are bulk-inserted first. Rate = N / (time from starting the worker to the moment a
poll, every 50 ms, sees all N DONE). The ideal is concurrency / delay (500/s by default).
Target (issue): >= 450 tasks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from _common import (
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
    verdict,
    wait_until,
    write_results,
)

from processgpt.agents.task_runner import A2ATaskRunner
from processgpt.runtime.serving import tune_gc_for_serving
from processgpt.runtime.worker import Worker, WorkerOptions

NAME = "throughput_io"
TARGET_RATE = 450.0


async def main(args: argparse.Namespace) -> None:
    tune_gc_for_serving()  # as the `processgpt worker` process does (for everything run here)
    n: int = args.tasks
    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        db = await open_processgpt(dsn, max_size=10)
        try:
            await insert_tasks(db, n, "io")
            runners = {"io": A2ATaskRunner(NoopExecutor(delay=args.delay))}
            options = WorkerOptions(concurrency=args.concurrency, shutdown_grace=5.0)
            worker = Worker(db, runners, options)

            async def all_done() -> bool:
                return not await has_open_tasks(db)

            t0 = time.perf_counter()
            runner = asyncio.create_task(worker.run())
            try:
                t_end = await wait_until(all_done, alive=runner)
            finally:
                worker.stop()
                await runner
            row = await db.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'DONE') AS done,"
                " extract(epoch FROM max(finished_at) - min(started_at))::float8 AS span,"
                " extract(epoch FROM percentile_cont(0.5) WITHIN GROUP"
                "   (ORDER BY finished_at - started_at))::float8 AS p50_run,"
                " extract(epoch FROM max(finished_at - started_at))::float8 AS max_run"
                " FROM todolist"
            )
            info = await server_info(dsn)
        finally:
            await db.close()
    assert row is not None
    if row["done"] != n:
        raise RuntimeError(f"{row['done']} of {n} tasks are DONE: not a valid run")
    wall = t_end - t0
    ideal = args.concurrency / args.delay
    rate = n / wall
    print_table(
        f"I/O-bound throughput: {n} tasks of {args.delay:g} s, one worker, concurrency "
        f"{args.concurrency}",
        ["measure", "value"],
        [
            ["tasks done", row["done"]],
            ["wall time, s", wall],
            ["tasks/s", rate],
            ["tasks/s (db timestamps)", n / row["span"]],
            ["ideal tasks/s (concurrency / delay)", ideal],
            ["efficiency vs ideal, %", 100 * rate / ideal],
            ["per-task claim -> done, p50 s", row["p50_run"]],
            ["per-task claim -> done, max s", row["max_run"]],
        ],
    )
    print(
        f"target >= {TARGET_RATE:g} tasks/s: {rate:.1f}, "
        f"{verdict(rate, TARGET_RATE, higher_is_better=True)}"
    )
    write_results(
        NAME,
        {
            "params": {"tasks": n, "concurrency": args.concurrency, "delay_s": args.delay},
            "results": {
                "done": row["done"],
                "wall_s": wall,
                "rate": rate,
                "db_rate": n / row["span"],
                "ideal_rate": ideal,
                "p50_task_s": row["p50_run"],
                "max_task_s": row["max_run"],
            },
            "target_rate": TARGET_RATE,
            "meets_target": rate >= TARGET_RATE,
            "environment": info,
        },
    )


if __name__ == "__main__":
    p = parser(__doc__, timeout=300)
    p.add_argument("--tasks", type=int, default=5000, help="tasks (default 5000)")
    p.add_argument("--concurrency", type=int, default=500, help="worker concurrency")
    p.add_argument("--delay", type=float, default=1.0, help="seconds each task waits")
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

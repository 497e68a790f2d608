"""A retention pass at scale: how fast it deletes, and what it costs the work running beside it.

A database is filled (as ``scale.py`` fills it) with ``--finished`` tasks that finished over
the last 30 days, three events each. Then, twice, one in-process worker drains ``--tasks``
no-op tasks: once alone, once while a retention pass (``RetentionJob.run_once``, the job the
workers run, default 1 day: all but the last day's tasks expire) deletes in batches of
``--batch``. Reported: the pass's tasks and events deleted per second, and the worker's rate
with and without the pass (their ratio: the issue asks that retention not block claims).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _common import (
    fresh_database,
    open_processgpt,
    parser,
    postgres_server,
    print_table,
    run,
    server_info,
    write_results,
)
from scale import fill, throughput

from processgpt.db.retention import RetentionRepository
from processgpt.runtime.retention import RetentionJob, RetentionOptions
from processgpt.runtime.serving import tune_gc_for_serving

NAME = "retention_pass"


async def main(args: argparse.Namespace) -> None:
    tune_gc_for_serving()
    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        db = await open_processgpt(dsn, max_size=10)
        try:
            print(f"filling {args.finished:,} finished tasks", flush=True)
            await fill(db, 0, args.finished)
            alone = await throughput(db, args.tasks, args.concurrency, False)
            job = RetentionJob(
                RetentionRepository(db), RetentionOptions(default_days=1, batch=args.batch)
            )
            t0 = time.perf_counter()
            pass_task = asyncio.create_task(job.run_once())
            beside = await throughput(db, args.tasks, args.concurrency, False)
            during_pass = not pass_task.done()
            removed = await pass_task
            pass_s = time.perf_counter() - t0
            left = await db.fetchval("SELECT count(*) FROM todolist")
            info = await server_info(dsn)
        finally:
            await db.close()
    assert removed is not None
    gone = removed["default"]
    ratio = beside["rate"] / alone["rate"]
    print_table(
        f"retention pass over {args.finished:,} finished tasks (batch {args.batch}), and "
        f"{args.tasks} no-op tasks at concurrency {args.concurrency} alone and beside it",
        ["measure", "value"],
        [
            ["tasks deleted", f"{gone.tasks:,}"],
            ["events deleted", f"{gone.events:,}"],
            ["pass seconds", pass_s],
            ["tasks deleted / s", gone.tasks / pass_s],
            ["events deleted / s", gone.events / pass_s],
            ["tasks left", f"{left:,}"],
            ["worker tasks/s alone", alone["rate"]],
            ["worker tasks/s beside the pass", beside["rate"]],
            ["ratio", ratio],
            ["the pass outlasted the worker's run", "yes" if during_pass else "no"],
        ],
    )
    results: dict[str, Any] = {
        "params": vars(args),
        "deleted": {"tasks": gone.tasks, "events": gone.events},
        "pass_s": pass_s,
        "tasks_left": left,
        "worker_alone": alone,
        "worker_beside_pass": beside,
        "ratio": ratio,
        "pass_outlasted_worker_run": during_pass,
        "environment": info,
    }
    write_results(NAME, results)


if __name__ == "__main__":
    p = parser(__doc__, timeout=3600)
    p.add_argument("--finished", type=int, default=1_000_000, help="finished tasks to fill")
    p.add_argument("--tasks", type=int, default=10_000, help="no-op tasks per worker run")
    p.add_argument("--concurrency", type=int, default=50, help="worker concurrency")
    p.add_argument("--batch", type=int, default=1000, help="retention batch")
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

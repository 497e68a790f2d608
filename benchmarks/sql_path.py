"""Postgres's share of a no-op task: the worker's own statements, with no executor.

The loop a worker runs, minus everything in Python that is not the statements themselves: claim
up to ``--batch`` tasks (``WorkerQueries.claim``, the same statement and context read the
worker uses), then end each with the rows a no-op task writes (two status events, the
``crew_completed`` event, the output and DONE) in one ``WorkerQueries.apply_batch``, one batch
after the other on one connection at a time, with the session settings of the worker's own
connections. The server's CPU per task is what these statements cost, the part of
``throughput_noop``'s Postgres CPU no Python change can remove; use it to judge a schema or SQL
change on its own.
"""

from __future__ import annotations

import argparse
import time

from _common import (
    CpuMeter,
    fresh_database,
    insert_tasks,
    open_processgpt,
    parser,
    postgres_server,
    print_table,
    run,
    server_info,
    write_results,
)

from processgpt.db.worker_queries import (
    SERVER_SETTINGS,
    ClaimedTask,
    EventRow,
    TaskWrite,
    WorkerQueries,
)
from processgpt.domain.task import TaskStatus

NAME = "sql_path"
_COMPLETED = '{"status":"completed"}'


def _noop_write(task: ClaimedTask) -> TaskWrite:
    seq = task.last_seq
    job = str(task.id)
    write = TaskWrite(task.id, task.fence, status=TaskStatus.DONE, output_json='"ok"')
    write.events = [
        EventRow(seq + 1, job, "task_working", None, None, '"a"'),
        EventRow(seq + 2, job, "task_working", None, None, '"b"'),
        EventRow(seq + 3, "CREW_FINISHED", "crew_completed", "crew", None, _COMPLETED),
    ]
    return write


async def main(args: argparse.Namespace) -> None:
    async with postgres_server(args.database_url) as server:
        async with fresh_database(server) as dsn:
            # the session settings of the worker's own connections
            db = await open_processgpt(dsn, max_size=2, server_settings=SERVER_SETTINGS)
            try:
                await insert_tasks(db, args.tasks, "noop")
                await db.execute("VACUUM ANALYZE todolist")
                queries = WorkerQueries(db)
                meter = await CpuMeter.for_server(server)
                claim_s = write_s = 0.0
                done = 0
                meter.start()
                while done < args.tasks:
                    t0 = time.perf_counter()
                    claimed = await queries.claim(["noop"], args.batch, "bench", 30.0)
                    t1 = time.perf_counter()
                    writes = [_noop_write(row) for row in claimed]
                    accepted = await queries.apply_batch(writes)
                    t2 = time.perf_counter()
                    if len(accepted) != len(writes):
                        raise RuntimeError("a fenced write was refused")
                    claim_s += t1 - t0
                    write_s += t2 - t1
                    done += len(claimed)
                meter.stop()
                events = await db.fetchval("SELECT count(*) FROM events")
            finally:
                await db.close()
        info = await server_info(server)

    n = args.tasks
    results = {
        "tasks": n,
        "batch": args.batch,
        "events_written": events,
        "claim_ms_per_batch": claim_s / (n / args.batch) * 1e3,
        "write_ms_per_batch": write_s / (n / args.batch) * 1e3,
        "claim_us_per_task": claim_s / n * 1e6,
        "write_us_per_task": write_s / n * 1e6,
        **meter.per_task(n),
    }
    print_table(
        f"the worker's statements alone, {n} no-op tasks in batches of {args.batch}",
        ["measure", "value"],
        [
            ["claim, wall µs per task", results["claim_us_per_task"]],
            ["batch write, wall µs per task", results["write_us_per_task"]],
            ["Postgres CPU µs per task", results["postgres_cpu_us_per_task"]],
            ["this process's CPU µs per task", results["python_cpu_us_per_task"]],
        ],
    )
    params = {"tasks": n, "batch": args.batch, "own_server": args.database_url is None}
    write_results(NAME, {"params": params, **results, "environment": info})


if __name__ == "__main__":
    p = parser(__doc__, timeout=300)
    p.add_argument("--tasks", type=int, default=30_000, help="tasks (default 30000)")
    p.add_argument("--batch", type=int, default=100, help="tasks per claim and write")
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

"""No-op task throughput of one worker process, compared with pgqueuer on the same server.

N tasks are bulk-inserted first, then one in-process worker drains them. Each ProcessGPT task
is the full no-op: claimed, two status events and a final artifact written, plus the worker's
own ``crew_completed`` event and the DONE state. Each pgqueuer job is an empty entrypoint.

Rate = N / (time from starting the worker to the moment a poll, every 50 ms, sees all N done:
no ProcessGPT task PENDING or IN_PROGRESS, pgqueuer's queue table empty; a run where not all N
ended well is refused). The database's own view, N / (last finish - first start) from the
tables' timestamps, is reported too. Both runtimes run ``--rounds`` times, alternating which
goes first; the ratio compared with the target is the median over rounds of ProcessGPT's rate
over pgqueuer's in the same round. Targets (issue 15): ProcessGPT / pgqueuer >= 1.2, and the
worker's CPU per task (median over rounds) at most pgqueuer's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from importlib.metadata import version
from typing import Any

import asyncpg
from _common import (
    EVENT_STYLES,
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
    verdict,
    wait_until,
    write_results,
)
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries

from processgpt.agents.task_runner import A2ATaskRunner
from processgpt.runtime.serving import tune_gc_for_serving
from processgpt.runtime.worker import Worker, WorkerOptions

NAME = "throughput_noop"
TARGET_RATIO = 1.2
ENQUEUE_CHUNK = 5000


async def run_processgpt(
    server: str, n: int, concurrency: int, *, events: str = "direct"
) -> dict[str, Any]:
    async with fresh_database(server) as dsn:
        db = await open_processgpt(dsn, max_size=10)
        try:
            await insert_tasks(db, n, "noop")
            runners = {"noop": A2ATaskRunner(NoopExecutor(events=events))}
            worker = Worker(db, runners, WorkerOptions(concurrency=concurrency, shutdown_grace=5))

            async def all_done() -> bool:
                return not await has_open_tasks(db)

            meter = await CpuMeter.for_server(server)
            meter.start()
            t0 = time.perf_counter()
            runner = asyncio.create_task(worker.run())
            try:
                t_end = await wait_until(all_done, alive=runner)
                meter.stop()
            finally:
                worker.stop()
                await runner
            row = await db.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'DONE') AS done,"
                " extract(epoch FROM max(finished_at) - min(started_at))::float8 AS span"
                " FROM todolist"
            )
            events = await db.fetchval("SELECT count(*) FROM events")
        finally:
            await db.close()
    assert row is not None
    if row["done"] != n:
        raise RuntimeError(f"{row['done']} of {n} tasks are DONE: not a valid run")
    wall = t_end - t0
    return {
        "tasks": n,
        "done": row["done"],
        "events_written": events,
        "wall_s": wall,
        "rate": n / wall,
        "db_span_s": row["span"],
        "db_rate": n / row["span"],
        "concurrency": concurrency,
        "claim_statements": worker.stats["claim_statements"],
        "write_batches": worker.writer_batches,
        **meter.per_task(n),
    }


async def run_pgqueuer(server: str, n: int, batch_size: int, max_tasks: int) -> dict[str, Any]:
    async with fresh_database(server, "pgq_bench") as dsn:
        admin = await asyncpg.connect(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            setup = Queries(AsyncpgDriver(admin))
            await setup.install()
            for start in range(0, n, ENQUEUE_CHUNK):
                k = min(ENQUEUE_CHUNK, n - start)
                await setup.enqueue(["noop"] * k, [None] * k, [0] * k)

            qm = QueueManager(Queries(AsyncpgDriver(conn)))

            @qm.entrypoint("noop")
            async def noop(job: Job) -> None:
                return None

            async def all_done() -> bool:
                # NOT EXISTS stops at the first row; a count would scan the queue every poll,
                # in the measured time (as has_open_tasks avoids for ProcessGPT).
                return bool(await admin.fetchval("SELECT NOT EXISTS (SELECT 1 FROM pgqueuer)"))

            meter = await CpuMeter.for_server(server)
            meter.start()
            t0 = time.perf_counter()
            runner = asyncio.create_task(
                qm.run(batch_size=batch_size, max_concurrent_tasks=max_tasks or None)
            )
            try:
                t_end = await wait_until(all_done, alive=runner)
                meter.stop()
            finally:
                qm.shutdown.set()
                await runner
            row = await admin.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'successful') AS done,"
                " extract(epoch FROM max(created) FILTER (WHERE status = 'successful')"
                "   - min(created) FILTER (WHERE status = 'picked'))::float8 AS span"
                " FROM pgqueuer_log"
            )
        finally:
            await conn.close()
            await admin.close()
    assert row is not None
    if row["done"] != n:
        raise RuntimeError(f"{row['done']} of {n} jobs succeeded: not a valid run")
    wall = t_end - t0
    return {
        "tasks": n,
        "done": row["done"],
        "wall_s": wall,
        "rate": n / wall,
        "db_span_s": row["span"],
        "db_rate": n / row["span"],
        "batch_size": batch_size,
        "max_concurrent_tasks": max_tasks or None,
        "driver": "AsyncpgDriver (one connection)",
        "version": version("pgqueuer"),
        **meter.per_task(n),
    }


async def main(args: argparse.Namespace) -> None:
    tune_gc_for_serving()  # as the `processgpt worker` process does (for everything run here)
    batch = args.pgq_batch_size or max(1, args.concurrency // 2)
    max_tasks = args.concurrency if args.pgq_max_concurrent is None else args.pgq_max_concurrent
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    async with postgres_server(args.database_url) as server:
        for round_no in range(args.rounds):
            # Each round runs both, in alternating order, so that a slow spell of the machine
            # (or whatever the first run leaves behind) does not always favour the same side.
            runs = [
                lambda: run_processgpt(server, args.tasks, args.concurrency, events=args.executor)
            ]
            if not args.skip_pgqueuer:
                runs.append(lambda: run_pgqueuer(server, args.tasks, batch, max_tasks))
            if round_no % 2:
                runs.reverse()
            for start_run in runs:
                result = await start_run()
                (theirs if "version" in result else ours).append(result)
        info = await server_info(server)

    columns = (
        "done",
        "wall_s",
        "rate",
        "db_rate",
        "python_cpu_us_per_task",
        "postgres_cpu_us_per_task",
    )
    label = f"processgpt (concurrency {args.concurrency}, {args.executor} events)"
    rows = [[f"{label}, round {i + 1}", *(r[c] for c in columns)] for i, r in enumerate(ours)]
    if theirs:
        limit = theirs[0]["max_concurrent_tasks"] or "unlimited"
        label = f"pgqueuer {theirs[0]['version']} (batch {batch}, max tasks {limit})"
        rows += [
            [f"{label}, round {i + 1}", *(r[c] for c in columns)] for i, r in enumerate(theirs)
        ]
    print_table(
        f"no-op throughput, one worker process, {args.tasks} tasks, {args.rounds} round(s)",
        [
            "runtime",
            "done",
            "wall s",
            "tasks/s",
            "tasks/s (db timestamps)",
            "worker CPU µs/task",
            "Postgres CPU µs/task",
        ],
        rows,
    )
    ratios = [a["rate"] / b["rate"] for a, b in zip(ours, theirs, strict=False)]
    ratio = statistics.median(ratios) if ratios else None
    if ratio is not None:
        print(
            f"ratio processgpt / pgqueuer per round = {', '.join(f'{r:.2f}' for r in ratios)}; "
            f"median {ratio:.2f} (target >= {TARGET_RATIO:g}): "
            f"{verdict(ratio, TARGET_RATIO, higher_is_better=True)}"
        )
    cpu_ours = statistics.median(r["python_cpu_us_per_task"] for r in ours)
    cpu_theirs = statistics.median(r["python_cpu_us_per_task"] for r in theirs) if theirs else None
    if cpu_theirs is not None:
        print(
            f"worker CPU per task, median over rounds: processgpt {cpu_ours:.1f} µs, pgqueuer "
            f"{cpu_theirs:.1f} µs (target: processgpt <= pgqueuer): "
            f"{verdict(cpu_ours, cpu_theirs, higher_is_better=False)}"
        )
    write_results(
        NAME,
        {
            "params": {
                "tasks": args.tasks,
                "concurrency": args.concurrency,
                "rounds": args.rounds,
                "executor_events": args.executor,
                "pgqueuer_batch_size": batch,
                "pgqueuer_max_concurrent_tasks": max_tasks,
            },
            "rate_definition": "tasks / seconds from worker start until a 50 ms poll sees all "
            "done; db_rate uses max(finished) - min(started) from the tables; ratio is the "
            "median over rounds of processgpt's rate / pgqueuer's rate in the same round",
            "processgpt": _median_run(ours),
            "pgqueuer": _median_run(theirs) if theirs else None,
            "rounds": {"processgpt": ours, "pgqueuer": theirs},
            "ratios": ratios,
            "ratio": ratio,
            "target_ratio": TARGET_RATIO,
            "meets_target": None if ratio is None else ratio >= TARGET_RATIO,
            "worker_cpu_us_per_task_median": {"processgpt": cpu_ours, "pgqueuer": cpu_theirs},
            "meets_cpu_target": None if cpu_theirs is None else cpu_ours <= cpu_theirs,
            "environment": info,
        },
    )


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (all its figures, as measured together)."""
    return sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]


if __name__ == "__main__":
    p = parser(__doc__, timeout=600)
    p.add_argument("--tasks", type=int, default=20_000, help="tasks per runtime (default 20000)")
    p.add_argument("--concurrency", type=int, default=100, help="worker concurrency")
    p.add_argument("--pgq-batch-size", type=int, help="pgqueuer batch size (concurrency / 2)")
    p.add_argument(
        "--pgq-max-concurrent",
        type=int,
        help="pgqueuer max_concurrent_tasks (default: concurrency; 0: unlimited)",
    )
    p.add_argument(
        "--executor",
        choices=EVENT_STYLES,
        default="direct",
        help="how the no-op executor builds its A2A events: fields set in place (direct), "
        "nested protobuf constructors (constructors: the default before 2026-12-07), or a2a's "
        "helper functions, which draw a uuid4 per message and artifact (helpers)",
    )
    p.add_argument(
        "--rounds", type=int, default=5, help="rounds of both runtimes, alternating (default 5)"
    )
    p.add_argument("--skip-pgqueuer", action="store_true", help="measure processgpt only")
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

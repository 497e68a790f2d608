"""Pickup latency: how long a task waits between its submission and its executor starting.

An idle in-process worker; tasks are submitted one at a time through ``TaskRepository.submit``
(each after the previous one started, 0-5 ms apart). Latency = ``perf_counter()`` on the first
line of ``execute`` minus ``perf_counter()`` just before the submit (and just after it
returned). Target (issue): p50 <= 5 ms, p99 <= 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from _common import (
    NoopExecutor,
    count_status,
    fresh_database,
    open_processgpt,
    parser,
    postgres_server,
    print_table,
    run,
    server_info,
    summarize,
    verdict,
    wait_until,
    write_results,
)

from processgpt.agents.task_runner import A2ATaskRunner
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskSubmission
from processgpt.runtime.serving import tune_gc_for_serving
from processgpt.runtime.worker import Worker, WorkerOptions

NAME = "pickup_latency"
TARGET_P50_MS = 5.0
TARGET_P99_MS = 20.0


async def main(args: argparse.Namespace) -> None:
    tune_gc_for_serving()  # as the `processgpt worker` process does (for everything run here)
    starts: dict[str, float] = {}
    started = asyncio.Event()

    def on_start(task_id: str) -> None:
        starts[task_id] = time.perf_counter()
        started.set()

    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        db = await open_processgpt(dsn, max_size=10)
        runners = {"noop": A2ATaskRunner(NoopExecutor(on_start=on_start))}
        options = WorkerOptions(concurrency=args.concurrency, shutdown_grace=5.0)
        worker = Worker(db, runners, options)
        runner = asyncio.create_task(worker.run())
        repo = TaskRepository(db)
        known = frozenset({"noop"})
        from_submit: list[float] = []
        from_return: list[float] = []
        insert_rtt: list[float] = []
        try:
            await worker.started.wait()
            await asyncio.sleep(0.5)  # let it settle into idle
            for i in range(args.warmup + args.tasks):
                started.clear()
                sub = TaskSubmission(agent_orch="noop", query="x", input={"i": i})
                t_submit = time.perf_counter()
                task, _ = await repo.submit("default", sub, known_agents=known)
                t_return = time.perf_counter()
                task_id = str(task.id)
                while task_id not in starts:
                    await asyncio.wait_for(started.wait(), timeout=10)
                    started.clear()
                if i >= args.warmup:
                    from_submit.append((starts[task_id] - t_submit) * 1000)
                    from_return.append((starts[task_id] - t_return) * 1000)
                    insert_rtt.append((t_return - t_submit) * 1000)
                await asyncio.sleep(random.uniform(0, 0.005))
            total: int = args.warmup + args.tasks

            async def all_done() -> bool:
                return await count_status(db, "DONE") == total

            await wait_until(all_done, alive=runner)
            info = await server_info(dsn)
        finally:
            worker.stop()
            await runner
            await db.close()

    stats = {
        "submit_to_start_ms": summarize(from_submit),
        "return_to_start_ms": summarize(from_return),
        "submit_round_trip_ms": summarize(insert_rtt),
    }
    p50, p99 = stats["submit_to_start_ms"]["p50"], stats["submit_to_start_ms"]["p99"]
    rows = [
        [label, s["p50"], s["p90"], s["p99"], s["max"], s["mean"]]
        for label, s in (
            ("submit -> executor start", stats["submit_to_start_ms"]),
            ("submit returned -> executor start", stats["return_to_start_ms"]),
            ("submit round trip (INSERT)", stats["submit_round_trip_ms"]),
        )
    ]
    print_table(
        f"pickup latency, ms ({args.tasks} tasks one at a time, {args.warmup} warm-up not "
        f"counted, worker concurrency {args.concurrency})",
        ["measure", "p50", "p90", "p99", "max", "mean"],
        rows,
    )
    print(
        f"target p50 <= {TARGET_P50_MS:g} ms: {p50:.2f} ms, "
        f"{verdict(p50, TARGET_P50_MS, higher_is_better=False)}"
    )
    print(
        f"target p99 <= {TARGET_P99_MS:g} ms: {p99:.2f} ms, "
        f"{verdict(p99, TARGET_P99_MS, higher_is_better=False)}"
    )
    write_results(
        NAME,
        {
            "params": {"tasks": args.tasks, "warmup": args.warmup, "concurrency": args.concurrency},
            "targets_ms": {"p50": TARGET_P50_MS, "p99": TARGET_P99_MS},
            "results": stats,
            "meets_target": p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS,
            "environment": info,
        },
    )


if __name__ == "__main__":
    p = parser(__doc__, timeout=300)
    p.add_argument("--tasks", type=int, default=1000, help="tasks measured (default 1000)")
    p.add_argument("--warmup", type=int, default=20, help="tasks run first, not counted")
    p.add_argument("--concurrency", type=int, default=10, help="worker concurrency")
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

"""Fairness: a small tenant's pickup latency beside another tenant's 100k-task backlog.

One worker process (this script with ``--serve``: a real, separate process with its own event
loop) runs agent ``noop`` with ``--concurrency`` slots. Tenant ``b`` submits one task every
``--interval`` seconds through ``TaskRepository.submit`` (``--probes`` of them), twice:

1. idle: nothing else to do;
2. backlog: tenant ``a`` has ``--backlog`` pending tasks of the same agent (topped up while
   the probes run, so the backlog never runs out), which the worker runs flat out (each one
   sleeps ``--a-delay`` seconds: 0 is a no-op, the most claims per second).

Pickup latency = the executor's first line (wall clock, in the worker process) minus the
moment just before the submit (wall clock, here): the same machine, the same clock. The
claim's own view (``started_at - created_at``, both the database's clock) is shown beside it.
Target (issue 15): b's pickup p99 with the backlog within 2x of the idle p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    artifact_event,
    fresh_database,
    open_processgpt,
    parser,
    postgres_server,
    print_table,
    run,
    server_info,
    summarize,
    verdict,
    write_results,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue

from processgpt.agents.task_runner import A2ATaskRunner
from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskSubmission
from processgpt.runtime.serving import tune_gc_for_serving
from processgpt.runtime.worker import Worker, WorkerOptions

NAME = "fairness"
TARGET_RATIO = 2.0


# -- the worker process ----------------------------------------------------------------------


class _Executor(AgentExecutor):
    """Records when each of tenant b's tasks starts; tenant a's sleep ``a_delay``."""

    def __init__(self, a_delay: float, starts: dict[str, float]) -> None:
        self.a_delay = a_delay
        self.starts = starts

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        now = time.time()
        row: dict[str, Any] = context.get_context_data()["row"]  # type: ignore[attr-defined]
        if row["tenant_id"] == "b":
            self.starts[str(context.task_id)] = now
        elif self.a_delay:
            await asyncio.sleep(self.a_delay)
        await event_queue.enqueue_event(artifact_event(context, '{"ok":true}'))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


async def serve(args: argparse.Namespace) -> None:
    """Run a worker until SIGTERM, then write b's start times to ``--starts``."""
    logging.basicConfig(level=logging.WARNING, format="worker: %(levelname)s %(message)s")
    tune_gc_for_serving()
    starts: dict[str, float] = {}
    db = await Database.connect(args.serve, max_size=10)
    worker = Worker(
        db,
        {"noop": A2ATaskRunner(_Executor(args.a_delay, starts))},
        WorkerOptions(concurrency=args.concurrency, shutdown_grace=5.0),
    )
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
    try:
        await worker.run()
    finally:
        await db.close()
        Path(args.starts).write_text(json.dumps(starts))


# -- the measurement -------------------------------------------------------------------------


async def _probe(db: Any, args: argparse.Namespace, phase: str) -> list[tuple[str, float]]:
    """Submit ``--probes`` tasks of tenant b, ``--interval`` apart; (id, wall time before)."""
    repo = TaskRepository(db)
    known = frozenset({"noop"})
    sent: list[tuple[str, float]] = []
    for i in range(args.probes):
        sub = TaskSubmission(agent_orch="noop", query=phase, input={"i": i})
        before = time.time()
        task, _ = await repo.submit("b", sub, known_agents=known)
        sent.append((str(task.id), before))
        await asyncio.sleep(args.interval)
    return sent


async def _warm_up(db: Any, worker: subprocess.Popen[bytes]) -> None:
    """Wait until the worker runs tasks (it imports and connects first), then let it idle."""
    await db.execute(
        "INSERT INTO todolist (tenant_id, agent_orch, query) "
        "SELECT 'b', 'noop', 'warm-up' FROM generate_series(1, 20)"
    )
    while await db.fetchval("SELECT count(*) FROM todolist WHERE status <> 'DONE'"):
        if worker.poll() is not None:
            raise SystemExit(f"the worker process exited with status {worker.returncode}")
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)


async def _top_up(db: Any, backlog: int, stop: asyncio.Event) -> None:
    """Keep tenant a's pending tasks near ``backlog`` (checked twice a second)."""
    while not stop.is_set():
        pending = await db.fetchval(
            "SELECT count(*) FROM todolist WHERE status = 'PENDING' AND agent_orch = 'noop'"
            " AND tenant_id = 'a'"
        )
        if pending < backlog * 0.9:
            await _insert_backlog(db, backlog - pending)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _insert_backlog(db: Any, count: int) -> None:
    await db.execute(
        "INSERT INTO todolist (tenant_id, agent_orch, query) "
        "SELECT 'a', 'noop', 'x' FROM generate_series(1, $1)",
        count,
    )


async def main(args: argparse.Namespace) -> None:
    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        db = await open_processgpt(dsn, max_size=5)
        await db.execute("INSERT INTO tenants (id) VALUES ('a'), ('b')")
        starts_file = Path(args.results_dir) / "fairness_starts.json"
        worker = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                dsn,
                "--starts",
                str(starts_file),
                "--concurrency",
                str(args.concurrency),
                "--a-delay",
                str(args.a_delay),
            ]
        )
        try:
            await _warm_up(db, worker)
            idle = await _probe(db, args, "idle")
            await _insert_backlog(db, args.backlog)
            await asyncio.sleep(1.0)  # the worker is in its stride
            stop = asyncio.Event()
            top_up = asyncio.create_task(_top_up(db, args.backlog, stop))
            t0, a0 = time.perf_counter(), await _done(db, "a")
            loaded = await _probe(db, args, "backlog")
            a_rate = (await _done(db, "a") - a0) / (time.perf_counter() - t0)
            stop.set()
            await top_up
            pending_a = await db.fetchval(
                "SELECT count(*) FROM todolist WHERE status = 'PENDING' AND tenant_id = 'a'"
            )
            # b's last task is claimed (or the run fails below)
            await asyncio.sleep(2.0)
            claims = {
                r["query"]: [None if v is None else float(v) for v in r["ms"]]
                for r in await db.fetch(
                    "SELECT query, array_agg(EXTRACT(EPOCH FROM started_at - created_at) * 1000)"
                    " AS ms FROM todolist WHERE tenant_id = 'b' AND query <> 'warm-up'"
                    " GROUP BY query"
                )
            }
            info = await server_info(dsn)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
            await db.close()
    starts: dict[str, float] = json.loads(starts_file.read_text())
    starts_file.unlink()
    missing = [i for i, _ in idle + loaded if i not in starts]
    if missing or None in claims["idle"] + claims["backlog"]:
        raise SystemExit(f"{len(missing)} of tenant b's tasks never started")
    stats = {
        "idle_start_ms": summarize([(starts[i] - t) * 1000 for i, t in idle]),
        "backlog_start_ms": summarize([(starts[i] - t) * 1000 for i, t in loaded]),
        "idle_claim_ms": summarize([v for v in claims["idle"] if v is not None]),
        "backlog_claim_ms": summarize([v for v in claims["backlog"] if v is not None]),
    }
    ratio = stats["backlog_start_ms"]["p99"] / stats["idle_start_ms"]["p99"]
    rows = [
        [label, s["p50"], s["p90"], s["p99"], s["max"], s["mean"]]
        for label, s in (
            ("idle: submit -> executor start", stats["idle_start_ms"]),
            ("backlog: submit -> executor start", stats["backlog_start_ms"]),
            ("idle: created -> claimed (db clock)", stats["idle_claim_ms"]),
            ("backlog: created -> claimed (db clock)", stats["backlog_claim_ms"]),
        )
    ]
    print_table(
        f"tenant b's pickup latency, ms ({args.probes} tasks {args.interval:g} s apart per "
        f"phase; worker concurrency {args.concurrency}; tenant a: {args.backlog:,} pending, "
        f"{args.a_delay * 1000:g} ms each, run at {a_rate:,.0f} tasks/s meanwhile, "
        f"{pending_a:,} still pending at the end)",
        ["measure", "p50", "p90", "p99", "max", "mean"],
        rows,
    )
    print(
        f"target backlog p99 <= {TARGET_RATIO:g}x idle p99: {ratio:.2f}x, "
        f"{verdict(ratio, TARGET_RATIO, higher_is_better=False)}"
    )
    write_results(
        NAME,
        {
            "params": {
                "probes": args.probes,
                "interval_s": args.interval,
                "backlog": args.backlog,
                "a_delay_s": args.a_delay,
                "concurrency": args.concurrency,
            },
            "target_ratio": TARGET_RATIO,
            "results": stats,
            "a_tasks_per_second": a_rate,
            "a_pending_at_end": pending_a,
            "p99_ratio": ratio,
            "meets_target": ratio <= TARGET_RATIO,
            "environment": info,
        },
    )


async def _done(db: Any, tenant: str) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM todolist WHERE status = 'DONE' AND tenant_id = $1", tenant
        )
    )


if __name__ == "__main__":
    p = parser(__doc__, timeout=900)
    p.add_argument("--probes", type=int, default=60, help="tenant b's tasks per phase")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between b's tasks")
    p.add_argument("--backlog", type=int, default=100_000, help="tenant a's pending tasks")
    p.add_argument("--a-delay", type=float, default=0.0, help="seconds each of a's tasks takes")
    p.add_argument("--concurrency", type=int, default=10, help="worker concurrency")
    p.add_argument("--results-dir", default="/tmp", help="where the worker leaves its timings")
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--starts", help=argparse.SUPPRESS)
    arguments = p.parse_args()
    if arguments.serve:
        asyncio.run(serve(arguments))
    else:
        run(main(arguments), arguments.timeout)

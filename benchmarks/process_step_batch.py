"""The steps of one worker batch, alone: what each costs in Python and in Postgres.

``--instances`` instances of process_throughput's ``seq5`` (or one task each of ``fork4``)
are started; then, ``--reps`` times, one transaction does what a worker's batch does for the
steps of their first tasks (ended DONE): lock the instances (``lock_instances``), run each
step (``task_ended``: the engine's step on the stored state, gathered in a ``StepBatch``) and
write them (``apply_steps``), and is rolled back, so every repetition starts from the same
rows. Printed per step, medians over the repetitions: the Python process's CPU for the lock
(decoding rows), the steps and the flush (building and encoding the payload), and the CPU of
the connection's backend for the lock and for ``apply_steps`` (psutil reads CPU in clock
ticks, 10 ms: with 2,000 steps, 5 µs per step).

``--variant NAME=FILE`` runs, alternating with the committed statement, another text of
``apply_steps`` from FILE; text before a line ``-- apply`` is executed first in the same
transaction (not timed: e.g. ``ALTER TABLE ... DROP CONSTRAINT ...;`` to price a
constraint). A measuring aid for SQL changes, not a benchmark with a target.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import psutil
from _common import fresh_database, open_processgpt, parser, postgres_server, run
from process_throughput import fork_join, publish, sequential, start_instances

from processgpt.db.database import Database
from processgpt.db.process_graphs import GraphCache
from processgpt.db.process_steps import StepRun, StepSettings
from processgpt.db.process_task_ends import EndedTask, task_ended
from processgpt.db.sql import QUERIES
from processgpt.db.step_batch import StepBatch
from processgpt.runtime.process_service import ProcessService
from processgpt.runtime.serving import tune_gc_for_serving

APPLY_MARK = "-- apply\n"
OUTPUT = {"ok": True}
"""What each task ended with (the no-op executor's result, as the benchmark's steps see it)."""


class _RollBack(Exception):
    """Ends a measured transaction without committing it."""


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(
    db: Database, graphs: GraphCache, tasks: list[dict[str, Any]], variant: str | None
) -> dict[str, float]:
    """One batch of steps, rolled back: CPU seconds of each part."""
    out: dict[str, float] = {}
    try:
        async with db.transaction() as conn:
            backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
            statement = QUERIES["apply_steps"]
            if variant is not None and APPLY_MARK in variant:
                before, variant = variant.split(APPLY_MARK, 1)
                await conn.execute(before)
            if variant is not None and variant.strip():
                statement = variant
            be0, py0 = _cpu(backend), time.process_time()
            run_ = StepRun(conn, graphs, StepSettings())
            run_.batch = StepBatch()
            await run_.lock(sorted({t["proc_inst_id"] for t in tasks}))
            be1, py1 = _cpu(backend), time.process_time()
            for t in tasks:
                ended = EndedTask(
                    t["id"],
                    t["proc_inst_id"],
                    t["activity_id"],
                    t["activation"],
                    None,
                    True,
                    OUTPUT,
                )
                await task_ended(run_, ended)
            py2 = time.process_time()
            saved = QUERIES["apply_steps"]
            QUERIES["apply_steps"] = statement
            try:
                await run_.flush()
            finally:
                QUERIES["apply_steps"] = saved
            be3, py3 = _cpu(backend), time.process_time()
            out = {
                "lock: python": py1 - py0,
                "lock: postgres": be1 - be0,
                "steps: python": py2 - py1,
                "flush: python": py3 - py2,
                "flush: postgres": be3 - be1,
            }
            raise _RollBack
    except _RollBack:
        pass
    return out


async def main(args: argparse.Namespace) -> None:
    tune_gc_for_serving()  # as a worker process does
    variants: dict[str, str | None] = {"committed": None}
    for item in args.variant:
        name, path = item.split("=", 1)
        variants[name] = Path(path).read_text()
    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        db = await open_processgpt(dsn, max_size=4)
        try:
            await publish(db, sequential("seq5", 5))
            await publish(db, fork_join("fork4", 4))
            await start_instances(ProcessService(db), args.kind, args.instances, clients=4)
            rows = await db.fetch(
                "SELECT id, proc_inst_id, activity_id, activation FROM todolist"
                " WHERE status = 'PENDING' ORDER BY id"
            )
            tasks: list[dict[str, Any]] = []
            seen: set[Any] = set()
            for row in rows:  # one ended task per instance (fork4: one of its branches)
                if row["proc_inst_id"] not in seen:
                    seen.add(row["proc_inst_id"])
                    tasks.append(dict(row))
            graphs = GraphCache()
            await measure(db, graphs, tasks, None)  # warm-up: graphs, prepared statements
            results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
            for rep in range(args.reps):
                order = list(variants.items())
                if rep % 2:
                    order.reverse()
                for name, text in order:
                    results[name].append(await measure(db, graphs, tasks, text))
        finally:
            await db.close()
    n = len(tasks)
    print(f"{args.kind}: {n} steps in one batch, {args.reps} repetitions; µs per step, median")
    for name, samples in results.items():
        parts = {k: statistics.median(s[k] for s in samples) * 1e6 / n for k in samples[0]}
        print(f"{name:>12}: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))


if __name__ == "__main__":
    p = parser(__doc__, timeout=900)
    p.add_argument("--instances", type=int, default=2000, help="instances (2000)")
    p.add_argument("--kind", choices=("seq5", "fork4"), default="seq5")
    p.add_argument("--reps", type=int, default=6, help="repetitions (6)")
    p.add_argument("--variant", action="append", default=[], help="NAME=FILE, see above")
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

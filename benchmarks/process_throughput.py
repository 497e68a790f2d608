"""Process throughput of one worker process, against independent no-op tasks in the same run.

Two definitions of no-op agent steps (``serviceTask``, agent ``bench_noop``, ``agentMode``
complete; the executor is ``_common.NoopExecutor``: two status events and an artifact):

* ``seq5``: start → s1 → s2 → s3 → s4 → s5 → end (5 tasks per instance, each created by the
  completion step of the one before);
* ``fork4``: start → fork → b1 | b2 | b3 | b4 → join → end (4 tasks per instance, created
  together by the start step; the join fires once, in the completion step of the last).

Each phase runs one real ``processgpt worker --agent bench_noop --executor
_common:NoopExecutor`` subprocess (concurrency ``--concurrency``), started after the phase's
work is in place, and stopped (SIGTERM) when it is done:

* ``tasks 5N``: 5·N independent no-op tasks inserted in one statement, until all are DONE;
* ``seq5 N``: N instances of seq5 started before (ProcessService.start, their first tasks
  PENDING), until all N are COMPLETED (all 5·N tasks DONE);
* ``tasks 4N`` and ``fork4 N`` the same with 4·N tasks and N fork/join instances.

What is compared: the drain time of the same number of no-op tasks, once as independent
tasks and once as the steps of N instances; starting the instances is not in the measured
time (its rate is reported apart). Time = from the worker's "worker started" log line to the
moment a poll (every 50 ms) sees no task PENDING or IN_PROGRESS; the database's view,
last finish − first claim from the rows' timestamps, is reported too. A phase where not every
task is DONE (or not every instance COMPLETED) is refused. The phases run ``--rounds`` times,
the process phase first in odd rounds, second in even ones; the cost ratio compared with the
target is the median over rounds of process time / independent-tasks time.
Target (issue): ratio ≤ 1.5.

The completion step's latency: ``--steps`` person's steps (a chain of user tasks) completed
one at a time with ``ProcessService.complete_task`` (the API's call: finish the work item,
lock the instance, advance the engine, create the next work item, history, one transaction),
timed around the call on the otherwise idle server: p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from _common import (
    CpuMeter,
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
    verdict,
    wait_until,
    write_results,
)

from processgpt.db.database import Database
from processgpt.db.process_definitions import ProcessDefinitionRepository
from processgpt.domain.process.publish import compile_definition
from processgpt.runtime.process_service import ProcessService

NAME = "process_throughput"
TARGET_RATIO = 1.5
AGENT = "bench_noop"
TENANT = "default"
HERE = Path(__file__).resolve().parent
CHAIN = 10
"""Person's steps per instance in the step-latency phase."""


def _step(node_id: str, kind: str = "serviceTask") -> dict[str, Any]:
    if kind == "userTask":
        return {"id": node_id, "name": node_id, "type": "userTask", "agentMode": "none"}
    return {
        "id": node_id,
        "name": node_id,
        "type": "serviceTask",
        "agent": AGENT,
        "agentMode": "complete",
        "instruction": "no-op",
    }


def _flows(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"id": f"f{i}", "source": s, "target": t} for i, (s, t) in enumerate(pairs)]


def _events() -> list[dict[str, str]]:
    return [{"id": "start", "type": "startEvent"}, {"id": "end", "type": "endEvent"}]


def sequential(definition_id: str, steps: int, kind: str = "serviceTask") -> dict[str, Any]:
    names = [f"s{i}" for i in range(1, steps + 1)]
    chain = ["start", *names, "end"]
    return {
        "processDefinitionId": definition_id,
        "processDefinitionName": f"{steps} steps in sequence",
        "events": _events(),
        "activities": [_step(n, kind) for n in names],
        "sequences": _flows(list(itertools.pairwise(chain))),
    }


def fork_join(definition_id: str, branches: int) -> dict[str, Any]:
    names = [f"b{i}" for i in range(1, branches + 1)]
    pairs = [("start", "fork"), *((("fork", n)) for n in names)]
    pairs += [*(((n, "join")) for n in names), ("join", "end")]
    return {
        "processDefinitionId": definition_id,
        "processDefinitionName": f"{branches} branches, fork and join",
        "events": _events(),
        "gateways": [
            {"id": "fork", "type": "parallelGateway"},
            {"id": "join", "type": "parallelGateway"},
        ],
        "activities": [_step(n) for n in names],
        "sequences": _flows(pairs),
    }


async def publish(db: Database, definition: dict[str, Any]) -> None:
    compiled = compile_definition(definition["processDefinitionId"], definition)
    await ProcessDefinitionRepository(db).publish(TENANT, compiled)


# -- the worker process -----------------------------------------------------------------------


class WorkerProcess:
    """``processgpt worker`` for :data:`AGENT` with the no-op executor, as a subprocess."""

    def __init__(self, dsn: str, concurrency: int) -> None:
        self.dsn = dsn
        self.concurrency = concurrency
        self.proc: asyncio.subprocess.Process | None = None
        self.started = asyncio.Event()
        self.started_at = 0.0
        self.log_tail: list[str] = []
        self.cpu_at_start = 0.0
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WorkerProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "processgpt.cli",
            "worker",
            "--agent",
            AGENT,
            "--executor",
            "_common:NoopExecutor",
            "--no-migrate",
            "--concurrency",
            str(self.concurrency),
            cwd=HERE,  # the executor is imported from the current directory
            env={**os.environ, "DATABASE_URL": self.dsn},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._drain())
        waiter = asyncio.create_task(self.started.wait())
        done, _ = await asyncio.wait(
            {waiter, self._reader}, timeout=60, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            waiter.cancel()
            await self._stop()
            raise RuntimeError("the worker did not start:\n" + "\n".join(self.log_tail[-20:]))
        return self

    async def _drain(self) -> None:
        """Reads the worker's log (keeps the pipe from filling up); notes when it started."""
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log_tail = [*self.log_tail[-49:], line]
            if not self.started.is_set() and "worker started" in line:
                self.started_at = time.perf_counter()
                self.cpu_at_start = self.cpu_seconds()
                self.started.set()

    def cpu_seconds(self) -> float:
        """CPU seconds the worker process has used so far (user + system)."""
        assert self.proc is not None
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def _stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = await asyncio.wait_for(self.proc.wait(), timeout=30)
        except TimeoutError:
            self.proc.kill()
            status = await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        return status

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()


# -- phases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    """Where a phase runs: the server, the benchmark's database, a pool on it, the worker's
    concurrency."""

    server: str
    dsn: str
    db: Database
    concurrency: int


async def _drain_with_worker(bench: Bench) -> dict[str, Any]:
    """Start a worker, wait until no task is open, stop it: the timings and CPU."""
    db = bench.db
    meter = await CpuMeter.for_server(bench.server)
    async with WorkerProcess(bench.dsn, bench.concurrency) as worker:
        meter.start()

        async def all_done() -> bool:
            if not worker.alive():
                raise RuntimeError("the worker exited:\n" + "\n".join(worker.log_tail[-20:]))
            return not await has_open_tasks(db)

        t_end = await wait_until(all_done)
        meter.stop()
        worker_cpu = worker.cpu_seconds() - worker.cpu_at_start
        wall = t_end - worker.started_at
    return {"wall_s": wall, "postgres_cpu_s": meter.postgres_s, "worker_cpu_s": worker_cpu}


async def _task_rows(db: Database, since: Any) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT count(*) AS tasks, count(*) FILTER (WHERE status = 'DONE') AS done,"
        " extract(epoch FROM max(finished_at) - min(started_at))::float8 AS span"
        " FROM todolist WHERE created_at >= $1",
        since,
    )
    assert row is not None
    return dict(row)


async def phase_tasks(bench: Bench, n: int) -> dict[str, Any]:
    db = bench.db
    since = await db.fetchval("SELECT clock_timestamp()")
    await insert_tasks(db, n, AGENT)
    timing = await _drain_with_worker(bench)
    rows = await _task_rows(db, since)
    if rows["done"] != n or rows["tasks"] != n:
        raise RuntimeError(f"{rows['done']} of {n} tasks are DONE: not a valid run")
    return {"kind": "tasks", "tasks": n, **timing, "db_span_s": rows["span"]}


async def start_instances(
    service: ProcessService, definition_id: str, n: int, clients: int
) -> float:
    """Start ``n`` instances with ``clients`` concurrent callers; the seconds it took."""
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=n)
    for i in range(n):
        queue.put_nowait(i)

    async def client() -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await service.start(TENANT, definition_id)

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(clients):
            group.create_task(client())
    return time.perf_counter() - t0


async def phase_process(
    bench: Bench, definition_id: str, n: int, tasks_per_instance: int
) -> dict[str, Any]:
    db = bench.db
    service = ProcessService(db)
    since = await db.fetchval("SELECT clock_timestamp()")
    start_s = await start_instances(service, definition_id, n, clients=8)
    timing = await _drain_with_worker(bench)
    rows = await _task_rows(db, since)
    instances = await db.fetchrow(
        "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'COMPLETED') AS completed,"
        " extract(epoch FROM max(end_date) - min(start_date))::float8 AS lifetime"
        " FROM bpm_proc_inst WHERE proc_def_id = $1 AND start_date >= $2",
        definition_id,
        since,
    )
    assert instances is not None
    expected = n * tasks_per_instance
    if instances["completed"] != n or rows["done"] != expected or rows["tasks"] != expected:
        raise RuntimeError(
            f"{instances['completed']} of {n} instances COMPLETED, {rows['done']} of "
            f"{expected} tasks DONE: not a valid run"
        )
    return {
        "kind": definition_id,
        "instances": n,
        "tasks": expected,
        **timing,
        "db_span_s": rows["span"],
        "instances_per_s": n / timing["wall_s"],
        "start_s": start_s,
        "starts_per_s": n / start_s,
    }


async def step_latency(db: Database, steps: int) -> dict[str, Any]:
    """``steps`` completion steps of person's work items, one at a time: their latencies."""
    service = ProcessService(db)
    instances = max(1, steps // CHAIN)
    for _ in range(instances):
        await service.start(TENANT, "human_chain")
    samples: list[float] = []
    while len(samples) < steps:
        items = await service.worklist(TENANT, limit=100)
        if not items:
            break
        for item in items:
            t0 = time.perf_counter()
            await service.complete_task(TENANT, uuid.UUID(str(item.id)), {"ok": True})
            samples.append((time.perf_counter() - t0) * 1000)
            if len(samples) >= steps:
                break
    return {"steps": len(samples), "ms": summarize(samples)}


# -- main ---------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    n = args.instances
    rounds: list[dict[str, Any]] = []
    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        db = await open_processgpt(dsn, max_size=10)
        try:
            await publish(db, sequential("seq5", 5))
            await publish(db, fork_join("fork4", 4))
            await publish(db, sequential("human_chain", CHAIN, "userTask"))
            bench = Bench(server, dsn, db, args.c)
            for round_no in range(args.rounds):
                result: dict[str, Any] = {}
                for name, per, shape in (("seq5", 5, "tasks_5n"), ("fork4", 4, "tasks_4n")):
                    pair = [
                        (shape, lambda per=per: phase_tasks(bench, n * per)),
                        (name, lambda name=name, per=per: phase_process(bench, name, n, per)),
                    ]
                    if round_no % 2 == 0:
                        pair.reverse()  # the process first in odd rounds (1st, 3rd, ...)
                    for key, phase in pair:
                        result[key] = await phase()
                rounds.append(result)
            latency = await step_latency(db, args.steps)
        finally:
            await db.close()
        info = await server_info(server)

    rows: list[list[object]] = []
    ratios: dict[str, list[float]] = {"seq5": [], "fork4": []}
    for i, r in enumerate(rounds, 1):
        for name, shape in (("seq5", "tasks_5n"), ("fork4", "tasks_4n")):
            p, t = r[name], r[shape]
            ratio = p["wall_s"] / t["wall_s"]
            ratios[name].append(ratio)
            rows.append(
                [
                    f"round {i}: {name} ({n} instances)",
                    p["tasks"],
                    p["wall_s"],
                    p["tasks"] / p["wall_s"],
                    p["instances_per_s"],
                    p["db_span_s"],
                    p["worker_cpu_s"] / p["tasks"] * 1e6,
                    p["postgres_cpu_s"] / p["tasks"] * 1e6,
                    ratio,
                ]
            )
            rows.append(
                [
                    f"round {i}: {t['tasks']} independent tasks",
                    t["tasks"],
                    t["wall_s"],
                    t["tasks"] / t["wall_s"],
                    "",
                    t["db_span_s"],
                    t["worker_cpu_s"] / t["tasks"] * 1e6,
                    t["postgres_cpu_s"] / t["tasks"] * 1e6,
                    "",
                ]
            )
    print_table(
        f"process throughput, one worker process (concurrency {args.c}), {args.rounds} round(s)",
        [
            "phase",
            "tasks",
            "wall s",
            "tasks/s",
            "instances/s",
            "db span s",
            "worker CPU µs/task",
            "Postgres CPU µs/task",
            "process / tasks",
        ],
        rows,
    )
    medians = {k: statistics.median(v) for k, v in ratios.items()}
    cpu_ratios = {
        name: [_cpu_per_task(r[name]) / _cpu_per_task(r[shape]) for r in rounds]
        for name, shape in (("seq5", "tasks_5n"), ("fork4", "tasks_4n"))
    }
    for name, value in medians.items():
        print(
            f"{name}: time of the process / time of the same independent tasks per round = "
            f"{', '.join(f'{x:.2f}' for x in ratios[name])}; median {value:.2f} "
            f"(target <= {TARGET_RATIO:g}): {verdict(value, TARGET_RATIO, higher_is_better=False)}"
        )
    for name, values in cpu_ratios.items():
        print(
            f"{name}: CPU per task (worker + Postgres) of the process / of the independent "
            f"tasks per round = {', '.join(f'{x:.2f}' for x in values)}; "
            f"median {statistics.median(values):.2f}"
        )
    starts = [r[k]["starts_per_s"] for r in rounds for k in ("seq5", "fork4")]
    print(f"instance starts (8 concurrent callers, not in the times above): "
          f"median {statistics.median(starts):,.0f}/s")  # fmt: skip
    ms = latency["ms"]
    print(
        f"completion step (ProcessService.complete_task of a person's step, one at a time, "
        f"{latency['steps']} steps): p50 {ms['p50']:.2f} ms, p90 {ms['p90']:.2f} ms, "
        f"p99 {ms['p99']:.2f} ms, max {ms['max']:.2f} ms"
    )
    write_results(
        NAME,
        {
            "params": {
                "instances": n,
                "concurrency": args.c,
                "rounds": args.rounds,
                "steps": args.steps,
            },
            "compared": "wall time of one worker process draining N instances already started "
            "(seq5: 5N tasks, fork4: 4N tasks) vs the same number of independent no-op tasks "
            "already inserted; from the worker's 'worker started' log line to a 50 ms poll "
            "seeing no open task; ratio = median over rounds of process / tasks",
            "rounds": rounds,
            "ratios": ratios,
            "median_ratios": medians,
            "cpu_ratios": cpu_ratios,
            "target_ratio": TARGET_RATIO,
            "meets_target": all(v <= TARGET_RATIO for v in medians.values()),
            "completion_step": latency,
            "environment": info,
        },
    )


def _cpu_per_task(phase: dict[str, Any]) -> float:
    return float(phase["worker_cpu_s"] + phase["postgres_cpu_s"]) / phase["tasks"]


if __name__ == "__main__":
    p = parser(__doc__, timeout=900)
    p.add_argument("--instances", type=int, default=2000, help="N instances per phase (2000)")
    p.add_argument(
        "--concurrency", dest="c", type=int, default=100, help="worker concurrency (100)"
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds of all phases (default 3)")
    p.add_argument(
        "--steps", type=int, default=1000, help="completion steps timed one at a time (1000)"
    )
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

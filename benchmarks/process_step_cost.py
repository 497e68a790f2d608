"""Cost of one process completion step through the database (a quick measurement).

A loop process ``start > review > decide > (review again | end)``: every completion of the
human step ``review`` (``ProcessService.complete_task``) is one transaction that locks the
instance and the task, checks and completes the task, runs the engine (the task's output
mapped, the exclusive gateway decided on a CEL condition) and applies the step in one
statement (state, history lines, the next activation's work item, the NOTIFY). ``--instances``
instances take turns, ``--steps`` completions each, from one client (no contention).

Reported per step: wall time (p50/p99), and the CPU time of the Python client and of the
Postgres server (``CpuMeter``; only meaningful when nothing else uses the machine). With
``--synchronous-commit off`` commits do not wait for the WAL flush: the step's own cost.
"""

from __future__ import annotations

import hashlib
import json
import time

from _common import (
    CpuMeter,
    fresh_database,
    open_processgpt,
    parser,
    postgres_server,
    print_table,
    run,
    summarize,
    write_results,
)

from processgpt.db.process_definitions import ProcessDefinitionRepository
from processgpt.domain.process.model import (
    Activity,
    Flow,
    Node,
    NodeKind,
    ProcessGraph,
    Variable,
)
from processgpt.domain.process.publish import Compiled, SourceFormat
from processgpt.domain.process.validate import check
from processgpt.runtime.process_service import ProcessService


def _loop_graph() -> ProcessGraph:
    return ProcessGraph(
        id="loop",
        name="loop",
        nodes=(
            Node("s", NodeKind.START, "s"),
            Node("review", NodeKind.TASK, "review", Activity(output_data=("again", "note"))),
            Node("decide", NodeKind.EXCLUSIVE, "decide", default_flow="f_end"),
            Node("e", NodeKind.END, "e"),
        ),
        flows=(
            Flow("f_start", "s", "review"),
            Flow("f_review", "review", "decide"),
            Flow("f_again", "decide", "review", "again == true"),
            Flow("f_end", "decide", "e"),
        ),
        variables=(Variable("again", "boolean"), Variable("note")),
    )


async def main(args: object) -> None:
    instances: int = args.instances  # type: ignore[attr-defined]
    steps: int = args.steps  # type: ignore[attr-defined]
    async with (
        postgres_server(args.database_url) as server,  # type: ignore[attr-defined]
        fresh_database(server) as dsn,
    ):
        settings = {"synchronous_commit": args.synchronous_commit}  # type: ignore[attr-defined]
        db = await open_processgpt(dsn, server_settings=settings)
        try:
            graph = _loop_graph()
            check(graph)
            source = json.dumps(graph.to_json(), sort_keys=True)
            compiled = Compiled(
                graph,
                "loop",
                SourceFormat.PROCESSGPT_JSON,
                source,
                hashlib.sha256(source.encode()).hexdigest(),
            )
            await ProcessDefinitionRepository(db).publish("default", compiled)
            service = ProcessService(db)
            ids = [(await service.start("default", "loop"))[0].id for _ in range(instances)]
            open_tasks = {
                r["proc_inst_id"]: r["id"]
                for r in await db.fetch("SELECT id, proc_inst_id FROM todolist")
            }
            # Warm up: plans, the graph cache, connections.
            for instance_id in ids[:5]:
                await service.complete_task(
                    "default", open_tasks[instance_id], {"again": True, "note": "x"}
                )
            open_tasks = {
                r["proc_inst_id"]: r["id"]
                for r in await db.fetch(
                    "SELECT id, proc_inst_id FROM todolist WHERE status = 'TODO'"
                )
            }
            meter = await CpuMeter.for_server(dsn)
            walls: list[float] = []
            meter.start()
            for round_ in range(steps):
                last = round_ == steps - 1
                for instance_id in ids:
                    t0 = time.perf_counter()
                    await service.complete_task(
                        "default",
                        open_tasks[instance_id],
                        {"again": not last, "note": f"round {round_}"},
                    )
                    walls.append(time.perf_counter() - t0)
                if not last:
                    open_tasks = {
                        r["proc_inst_id"]: r["id"]
                        for r in await db.fetch(
                            "SELECT id, proc_inst_id FROM todolist WHERE status = 'TODO'"
                        )
                    }
            meter.stop()
            completed = await db.fetchval(
                "SELECT count(*) FROM bpm_proc_inst WHERE status = 'COMPLETED'"
            )
            assert completed == instances, completed
        finally:
            await db.close()
    n = len(walls)
    wall = summarize([w * 1e6 for w in walls])
    cpu = meter.per_task(n)
    rows = [
        ("wall per step p50 (µs)", wall["p50"]),
        ("wall per step p99 (µs)", wall["p99"]),
        ("Postgres CPU per step (µs)", cpu["postgres_cpu_us_per_task"]),
        ("Python CPU per step (µs)", cpu["python_cpu_us_per_task"]),
        ("steps", float(n)),
    ]
    print_table(
        "process completion step (human task, exclusive gateway, next activation)",
        ["measure", "value"],
        rows,
    )
    write_results(
        "process_step_cost",
        {
            "steps": n,
            "synchronous_commit": args.synchronous_commit,  # type: ignore[attr-defined]
            "wall_us": wall,
            "cpu": cpu,
        },
    )


if __name__ == "__main__":
    p = parser(__doc__, timeout=600)
    p.add_argument("--instances", type=int, default=50)
    p.add_argument("--steps", type=int, default=20, help="completions per instance")
    p.add_argument(
        "--synchronous-commit",
        default="on",
        choices=("on", "off"),
        help="off: commits do not wait for the WAL flush (the step's own cost, without fsync)",
    )
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

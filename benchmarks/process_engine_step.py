"""Python cost of one step of the pure process engine (no database).

Measures ``advance`` (and ``start``) over small graphs: a sequence, an exclusive choice on a
CEL condition, a parallel fork/join and an inclusive split/join. Each scenario is one full run
of the instance; the table gives the cost per step (one ``start`` or one ``TaskCompleted``),
the median over ``--repeat`` runs of ``--runs`` instances each, plus the cost of the state's
JSON round trip. Target: well under 100 µs per step.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from _common import parser, print_table, verdict, write_results

from processgpt.domain.process.engine import advance, start
from processgpt.domain.process.events import TaskCompleted
from processgpt.domain.process.model import (
    Activity,
    Flow,
    Node,
    NodeKind,
    ProcessGraph,
    Variable,
)
from processgpt.domain.process.state import InstanceState, Wait
from processgpt.domain.process.step import Step

NOW = datetime(2030, 1, 1, tzinfo=UTC)
TARGET_US = 100.0


def _graph(name: str, spec: str, defaults: dict[str, str] | None = None) -> ProcessGraph:
    kinds = {
        "s": NodeKind.START,
        "e": NodeKind.END,
        "x": NodeKind.EXCLUSIVE,
        "p": NodeKind.PARALLEL,
        "i": NodeKind.INCLUSIVE,
    }
    flows: list[Flow] = []
    order: list[str] = []
    for edge in spec.split(";"):
        link, _, condition = edge.strip().partition(":")
        source, target = link.split(">")
        flows.append(Flow(f"{source}-{target}", source, target, condition or None))
        order += [n for n in (source, target) if n not in order]
    nodes = tuple(
        Node(
            n,
            kinds.get(n[0], NodeKind.TASK),
            n,
            Activity(role="clerk", duration_days=1) if n[0] not in kinds else None,
            default_flow=(defaults or {}).get(n),
        )
        for n in order
    )
    return ProcessGraph(name, name, nodes, tuple(flows), (Variable("amount"),))


SCENARIOS = {
    "sequence (3 tasks)": _graph("seq", "s>a; a>b; b>c; c>e"),
    "exclusive on a CEL condition": _graph(
        "xor", "s>a; a>x; x>big:amount > 100; x>low; big>e; low>e", {"x": "x-low"}
    ),
    "parallel fork/join (3 branches)": _graph(
        "and", "s>p1; p1>a; p1>b; p1>c; a>p2; b>p2; c>p2; p2>d; d>e"
    ),
    "inclusive split/join (2 of 3)": _graph(
        "or",
        "s>i1; i1>a:amount > 1; i1>b:amount > 2; i1>c:amount > 1000; a>i2; b>i2; c>i2; i2>d; d>e",
    ),
}


def run_instance(graph: ProcessGraph) -> tuple[int, list[InstanceState]]:
    """One instance from start to end; returns the steps taken and the states seen."""
    result = start(graph, {"amount": 500}, now=NOW)
    assert isinstance(result, Step)
    state = result.state
    states = [state]
    steps = 1
    while True:
        task = next((t for t in state.tokens if t.wait is Wait.TASK), None)
        if task is None:
            return steps, states
        result = advance(
            graph, state, TaskCompleted(task.node_id, task.activation, {"ok": True}), now=NOW
        )
        assert isinstance(result, Step)
        state = result.state
        states.append(state)
        steps += 1


def per_step_us(fn: Callable[[], int], runs: int, repeat: int) -> float:
    medians: list[float] = []
    for _ in range(repeat):
        steps = 0
        began = time.perf_counter()
        for _ in range(runs):
            steps += fn()
        medians.append((time.perf_counter() - began) / steps * 1e6)
    return statistics.median(medians)


def main() -> None:
    p = parser(__doc__, timeout=120)
    p.add_argument("--runs", type=int, default=2000, help="instances per measurement")
    p.add_argument("--repeat", type=int, default=5, help="measurements (the median is shown)")
    args = p.parse_args()
    rows = []
    results = {}
    for name, graph in SCENARIOS.items():
        steps, states = run_instance(graph)  # warm-up: builds the graph's index once
        step_us = per_step_us(lambda g=graph: run_instance(g)[0], args.runs, args.repeat)

        def round_trip(states: list[InstanceState] = states) -> int:
            for state in states:
                InstanceState.from_json(json.loads(json.dumps(state.to_json())))
            return len(states)

        json_us = per_step_us(round_trip, args.runs, args.repeat)
        rows.append(
            [
                name,
                steps,
                f"{step_us:.1f}",
                f"{json_us:.1f}",
                verdict(step_us, TARGET_US, higher_is_better=False),
            ]
        )
        results[name] = {"steps": steps, "us_per_step": step_us, "us_per_json_round_trip": json_us}
    print_table(
        "process engine: Python cost per step",
        ["scenario", "steps", "µs/step", "µs/state JSON round trip", f"≤ {TARGET_US:g} µs"],
        rows,
    )
    write_results(
        "process_engine_step",
        {"runs": args.runs, "repeat": args.repeat, "python": sys.version, "scenarios": results},
    )


if __name__ == "__main__":
    main()

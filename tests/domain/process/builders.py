"""Small builders for process graphs and a driver that runs the pure engine over them.

``build("s>a a>x x>b:amount > 5 x>c", ...)``: a flow per ``source>target[:condition]``. Node kinds
come from the id's first letter unless given: ``s`` start, ``e`` end, ``x`` exclusive, ``p``
parallel, ``i`` inclusive, anything else a task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from processgpt.domain.process.engine import advance, start
from processgpt.domain.process.events import Event, TaskCompleted
from processgpt.domain.process.model import (
    Activity,
    Flow,
    Node,
    NodeKind,
    ProcessGraph,
    Variable,
)
from processgpt.domain.process.state import InstanceState, Wait
from processgpt.domain.process.step import (
    CreateTask,
    Decision,
    HistoryEntry,
    HistoryKind,
    NeedsVerdicts,
    Step,
    Verdict,
)

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)

_KINDS = {
    "s": NodeKind.START,
    "e": NodeKind.END,
    "x": NodeKind.EXCLUSIVE,
    "p": NodeKind.PARALLEL,
    "i": NodeKind.INCLUSIVE,
}


def flow(
    source: str,
    target: str,
    condition: str | None = None,
    *,
    fid: str | None = None,
    mode: str = "expression",
    priority: int = 0,
) -> Flow:
    return Flow(
        id=fid or f"{source}-{target}",
        source=source,
        target=target,
        condition=condition,
        condition_mode=mode,
        priority=priority,
    )


_EDGE = re.compile(r"(?:^|\s)([\w-]+)>([\w-]+)(?::(.*?))?(?=\s+[\w-]+>[\w-]+(?::|\s|$)|\s*$)")


def parse_flows(spec: str) -> list[Flow]:
    """``a>b`` edges separated by spaces; ``a>b:condition`` runs to the next edge (write
    comparisons with spaces around ``>`` so they are not read as edges)."""
    return [
        flow(m.group(1), m.group(2), (m.group(3) or "").strip() or None)
        for m in _EDGE.finditer(spec)
    ]


def build(
    spec: str | Sequence[Flow],
    *,
    nodes: Sequence[Node] = (),
    variables: Sequence[str] = (),
    defaults: Mapping[str, str] | None = None,
    gid: str = "proc",
    roles: Sequence[Any] = (),
) -> ProcessGraph:
    """A graph from flows; nodes named in flows but not in ``nodes`` get a kind from their
    first letter (tasks get a plain user activity). ``defaults``: gateway -> default flow id."""
    flows = parse_flows(spec) if isinstance(spec, str) else list(spec)
    given = {n.id: n for n in nodes}
    boundary_ids = {b.id for n in nodes for b in n.boundary}
    order: list[str] = [n.id for n in nodes]
    for f in flows:
        for node_id in (f.source, f.target):
            if node_id not in order and node_id not in boundary_ids:
                order.append(node_id)
    built: list[Node] = []
    for node_id in order:
        if node_id in given:
            node = given[node_id]
        else:
            kind = _KINDS.get(node_id[0], NodeKind.TASK)
            node = Node(
                id=node_id,
                kind=kind,
                name=node_id,
                activity=Activity() if kind is NodeKind.TASK else None,
            )
        if defaults and node_id in defaults:
            node = Node(**{**node.__dict__, "default_flow": defaults[node_id]})
        built.append(node)
    return ProcessGraph(
        id=gid,
        name=gid,
        nodes=tuple(built),
        flows=tuple(flows),
        variables=tuple(Variable(v) for v in variables),
        roles=tuple(roles),
    )


def task(node_id: str, **activity: Any) -> Node:
    return Node(id=node_id, kind=NodeKind.TASK, name=node_id, activity=Activity(**activity))


@dataclass
class Run:
    """Drives one instance: keeps the state, and every decision and history entry so far."""

    graph: ProcessGraph
    state: InstanceState = field(default_factory=InstanceState)
    decisions: list[Decision] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    now: datetime = T0

    @classmethod
    def start(
        cls,
        graph: ProcessGraph,
        variables: Mapping[str, Any] | None = None,
        *,
        verdicts: Mapping[str, Verdict] | None = None,
        **kwargs: Any,
    ) -> Run:
        run = cls(graph)
        result = start(graph, variables, now=run.now, verdicts=verdicts, **kwargs)
        run._apply(result)
        return run

    def _apply(self, result: Step | NeedsVerdicts) -> Step:
        assert isinstance(result, Step), result
        self.state = result.state
        self.decisions.extend(result.decisions)
        self.history.extend(result.history)
        self.steps.append(result)
        return result

    def send(
        self, event: Event, *, verdicts: Mapping[str, Verdict] | None = None, later: float = 0
    ) -> Step:
        self.now = self.now + timedelta(seconds=later)
        return self._apply(advance(self.graph, self.state, event, now=self.now, verdicts=verdicts))

    def open_tasks(self) -> list[tuple[str, int]]:
        return [(t.node_id, t.activation) for t in self.state.tokens if t.wait is Wait.TASK]

    def open_task_ids(self) -> list[str]:
        return sorted(node for node, _ in self.open_tasks())

    def activation(self, node_id: str) -> int:
        found = [a for n, a in self.open_tasks() if n == node_id]
        assert len(found) == 1, (node_id, self.open_tasks())
        return found[0]

    def complete(self, node_id: str, output: Mapping[str, Any] | None = None) -> Step:
        return self.send(TaskCompleted(node_id, self.activation(node_id), dict(output or {})))

    def created(self) -> list[tuple[str, int]]:
        """Every task created so far, in order."""
        return [(d.node_id, d.activation) for d in self.decisions if isinstance(d, CreateTask)]

    def kinds(self) -> list[HistoryKind]:
        return [h.kind for h in self.history]

    def entries(self, kind: HistoryKind) -> list[HistoryEntry]:
        return [h for h in self.history if h.kind is kind]


def of_type(decisions: Sequence[Decision], kind: type[Any]) -> list[Any]:
    return [d for d in decisions if isinstance(d, kind)]

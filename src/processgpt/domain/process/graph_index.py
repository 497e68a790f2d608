"""Per-graph lookups the engine needs on every step, computed once per graph object.

A :class:`ProcessGraph` is immutable, so what is derived from it (flow order at splits,
reachability, inclusive split/join pairs, compiled conditions) is cached against the object
for as long as it lives. Pure: the cache holds only values derived from the graph.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from processgpt.domain.process.conditions import (
    CompiledCondition,
    ConditionError,
    compile_condition,
)
from processgpt.domain.process.model import BoundaryTimer, Flow, Node, NodeKind, ProcessGraph
from processgpt.domain.process.structure import inclusive_joins, reachability, successors


@dataclass
class GraphIndex:
    node_ids: frozenset[str]
    ordered: dict[str, tuple[Flow, ...]]
    """Outgoing flows of each source (node or boundary timer) by (priority, document order)."""
    reach: dict[str, frozenset[str]]
    """Node ids reachable from a node or boundary timer id (one edge or more)."""
    joins: dict[str, str]
    """Inclusive split id -> the inclusive join that closes it."""
    boundaries: dict[str, tuple[Node, BoundaryTimer]]
    """Boundary timer id -> (the node it is attached to, the timer)."""
    variables: frozenset[str]
    has_inclusive: bool
    """The graph has an INCLUSIVE gateway (else no step looks for inclusive joins to fire)."""
    _conditions: dict[str, CompiledCondition | ConditionError] = field(default_factory=dict)

    def condition(self, flow: Flow) -> CompiledCondition:
        """The flow's compiled expression; raises ConditionError (cached) when it fails."""
        compiled = self._conditions.get(flow.id)
        if compiled is None:
            try:
                compiled = compile_condition(flow.condition or "", self.variables)
            except ConditionError as exc:
                compiled = exc
            self._conditions[flow.id] = compiled
        if isinstance(compiled, ConditionError):
            raise compiled
        return compiled

    def is_source(self, source_id: str) -> bool:
        return source_id in self.node_ids or source_id in self.boundaries


# Keyed by id() with a weak reference to check identity: hashing a graph costs its size, and
# the cache must not keep graphs alive.
_CACHE: dict[int, tuple[weakref.ref[ProcessGraph], GraphIndex]] = {}


def index(graph: ProcessGraph) -> GraphIndex:
    """The index of ``graph`` (built on first use, dropped when the graph is collected)."""
    found = _CACHE.get(id(graph))
    if found is not None and found[0]() is graph:
        return found[1]
    built = _build(graph)
    _CACHE[id(graph)] = (weakref.ref(graph), built)
    weakref.finalize(graph, _CACHE.pop, id(graph), None)
    return built


def _build(graph: ProcessGraph) -> GraphIndex:
    position = {f.id: i for i, f in enumerate(graph.flows)}
    sources = {f.source for f in graph.flows}
    ordered = {
        s: tuple(sorted(graph.outgoing(s), key=lambda f: (f.priority, position[f.id])))
        for s in sources
    }
    node_reach = reachability(graph)
    succ = successors(graph)
    boundaries: dict[str, tuple[Node, BoundaryTimer]] = {}
    reach = dict(node_reach)
    for node in graph.nodes:
        for boundary in node.boundary:
            boundaries[boundary.id] = (node, boundary)
            targets = succ.get(boundary.id, ())
            reach[boundary.id] = frozenset(targets).union(
                *(node_reach.get(t, frozenset()) for t in targets)
            )
    return GraphIndex(
        node_ids=frozenset(n.id for n in graph.nodes),
        ordered=ordered,
        reach=reach,
        joins=inclusive_joins(graph),
        boundaries=boundaries,
        variables=frozenset(v.name for v in graph.variables),
        has_inclusive=any(n.kind is NodeKind.INCLUSIVE for n in graph.nodes),
    )

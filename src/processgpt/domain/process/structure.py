"""Structure of a process graph: what can reach what, and which join closes an inclusive split.

Pure analysis over :class:`~.model.ProcessGraph`, used by the engine at run time and by the
publish-time validator (:func:`inclusive_problems`).

Edges are the sequence flows plus one edge from each node to each of its boundary timers (a
boundary timer's id is a flow source). END nodes, and nodes without outgoing flows, lead to a
virtual exit.

**Which join closes an inclusive split.** The closing join of an INCLUSIVE node ``S`` with
two or more outgoing flows is its *immediate post-dominator* ``J``: the nearest node that
every path from ``S`` to the exit passes through. When no such node exists (the branches end
on their own), the split has no join and its tokens run independently. The engine tags every
token the split emits with the split's activation (its scope); ``J`` fires for that scope once
no live token of the scope can still reach it, so it waits for exactly the branches the split
activated. A graph is refused (see :func:`inclusive_problems`) when that pairing is ambiguous:

* ``J`` is a PARALLEL gateway (it would wait for branches the split did not activate);
* ``J`` is an INCLUSIVE join that also receives flows from outside the block of ``S`` (the
  nodes reachable from ``S`` without passing through ``J``);
* ``J`` closes more than one inclusive split;
* ``S`` can reach itself again without passing through ``J`` (a loop inside its own block).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from processgpt.domain.process.model import NodeKind, ProcessGraph

_EXIT = "\x00exit"


@dataclass(frozen=True)
class Problem:
    """One reason a graph cannot run as drawn; ``element_id`` is the node or flow at fault."""

    element_id: str
    message: str


def successors(graph: ProcessGraph) -> dict[str, tuple[str, ...]]:
    """Every node's and boundary timer's direct successors (boundary timers are the node's)."""
    succ: dict[str, list[str]] = {}
    for node in graph.nodes:
        targets = succ.setdefault(node.id, [])
        targets.extend(f.target for f in graph.outgoing(node.id))
        for boundary in node.boundary:
            targets.append(boundary.id)
            succ[boundary.id] = [f.target for f in graph.outgoing(boundary.id)]
    return {k: tuple(dict.fromkeys(v)) for k, v in succ.items()}


def reachability(graph: ProcessGraph) -> dict[str, frozenset[str]]:
    """For each node id: the node ids reachable from it by one or more edges (itself only when
    it lies on a cycle). Boundary timer ids are traversed but not listed."""
    succ = successors(graph)
    node_ids = {n.id for n in graph.nodes}
    result: dict[str, frozenset[str]] = {}
    for start in node_ids:
        seen: set[str] = set()
        stack = list(succ.get(start, ()))
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(succ.get(current, ()))
        result[start] = frozenset(seen & node_ids)
    return result


def immediate_post_dominators(graph: ProcessGraph) -> dict[str, str | None]:
    """For each node id: its immediate post-dominator, or None when only the exit
    post-dominates it (or it cannot reach the exit at all)."""
    succ = {k: v or (_EXIT,) for k, v in successors(graph).items()}
    for node in graph.nodes:
        if node.kind is NodeKind.END:
            succ[node.id] = (_EXIT,)
    universe = frozenset(succ) | {_EXIT}
    pdom: dict[str, frozenset[str]] = {n: universe for n in succ}
    pdom[_EXIT] = frozenset({_EXIT})
    order = list(succ)
    changed = True
    while changed:
        changed = False
        for n in order:
            meet = frozenset.intersection(*(pdom[s] for s in succ[n]))
            new = meet | {n}
            if new != pdom[n]:
                pdom[n] = new
                changed = True
    node_ids = {n.id for n in graph.nodes}
    result: dict[str, str | None] = {}
    for n in node_ids:
        strict = pdom[n] - {n}
        if _EXIT not in strict:  # cannot reach the exit: no meaningful post-dominator
            result[n] = None
            continue
        # The immediate one is the strict post-dominator that all others post-dominate.
        chosen = None
        for candidate in strict - {_EXIT}:
            if candidate in node_ids and strict - {candidate} <= pdom[candidate]:
                chosen = candidate
                break
        result[n] = chosen
    return result


def inclusive_joins(graph: ProcessGraph) -> dict[str, str]:
    """Inclusive split id -> the INCLUSIVE join that closes it (splits without one omitted)."""
    return _pairs(graph)[0]


def inclusive_problems(graph: ProcessGraph) -> list[Problem]:
    """Every reason the inclusive split/join pairing of ``graph`` is ambiguous (empty: fine)."""
    return _pairs(graph)[1]


def _pairs(graph: ProcessGraph) -> tuple[dict[str, str], list[Problem]]:
    ipdom = immediate_post_dominators(graph)
    succ = successors(graph)
    problems: list[Problem] = []
    closed_by: dict[str, list[str]] = {}
    for node in graph.nodes:
        if node.kind is not NodeKind.INCLUSIVE or len(graph.outgoing(node.id)) < 2:
            continue
        join_id = ipdom.get(node.id)
        if join_id is None:
            continue
        join = graph.node(join_id)
        if join.kind is NodeKind.PARALLEL:
            problems.append(
                Problem(
                    node.id,
                    f"inclusive split {node.id!r} is closed by parallel gateway {join_id!r}, "
                    "which would wait for branches the split did not activate",
                )
            )
        elif join.kind is NodeKind.INCLUSIVE and len(graph.incoming(join_id)) >= 2:
            closed_by.setdefault(join_id, []).append(node.id)
    pairs: dict[str, str] = {}
    for join_id, splits in closed_by.items():
        if len(splits) > 1:
            problems.append(
                Problem(
                    join_id,
                    f"inclusive join {join_id!r} closes several splits ({', '.join(splits)}); "
                    "give each split its own join",
                )
            )
            continue
        split = splits[0]
        block = _block(succ, split, stop=join_id)
        outside = [f.id for f in graph.incoming(join_id) if f.source not in block]
        if outside:
            problems.append(
                Problem(
                    join_id,
                    f"inclusive join {join_id!r} closes split {split!r} but also receives "
                    f"flows from outside its block: {', '.join(outside)}",
                )
            )
        elif split in _block(succ, *_targets(succ, split), stop=join_id):
            problems.append(
                Problem(
                    split,
                    f"inclusive split {split!r} is reached again inside its own block "
                    f"(a loop that does not pass through its join {join_id!r})",
                )
            )
        else:
            pairs[split] = join_id
    return pairs, problems


def _targets(succ: Mapping[str, Iterable[str]], node_id: str) -> tuple[str, ...]:
    return tuple(succ.get(node_id, ()))


def _block(succ: Mapping[str, Iterable[str]], *starts: str, stop: str) -> set[str]:
    """Nodes reachable from ``starts`` (included) without passing through ``stop``."""
    seen: set[str] = set()
    stack = [s for s in starts if s != stop]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(t for t in succ.get(current, ()) if t != stop)
    return seen

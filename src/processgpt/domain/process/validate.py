"""The rules a process graph must keep to be published. :func:`check` raises
:class:`~processgpt.domain.errors.ProcessDefinitionInvalid` with every problem at once.

Rules (each graph: the process and every embedded sub-process):

* Ids: non-empty, at most 200 characters, no control characters and no ``/`` (it joins the
  node ids of a sub-process's path and a timer's key); unique across the whole definition
  (nodes, flows and boundary timers, sub-processes included).
* Flows: source and target exist in the same graph (a boundary timer counts as a source).
* Start and end: at least one start event; exactly one without a timer in a sub-process; a
  start event has no incoming and at least one outgoing flow; an end event has no outgoing
  flow; every other node has an outgoing flow (a token must not get stuck silently); every
  node is reachable from a start event; an end event is reachable.
* Gateways: a gateway splits (several outgoing flows) or joins (several incoming), else it
  is pointless and refused. Parallel gateways carry no conditions and no default. An
  exclusive or inclusive split: every outgoing flow but the default has a condition; the
  default is one of its outgoing flows and has no condition.
* Conditions only on flows leaving an exclusive or inclusive gateway. A CEL condition
  compiles and reads only declared variables (:mod:`.conditions`); a text condition is at
  most :data:`MAX_TEXT_CONDITION` characters.
* Tasks: a ``duration`` of 0 to 3650 days; a named role is declared (ProcessGPT ``roles[]``,
  BPMN lanes); an agent step (``agent_mode`` draft or complete) names an agent or an
  orchestration.
* Timers: ISO 8601 durations (``PT15M``, ``P1DT2H``) and dates with a time zone; a cycle only
  on a start event (``R[n]/…`` or a five-field cron). Boundary timers sit on tasks, call
  activities or sub-processes and have an outgoing flow.
* Call activities name the definition they call; message and signal events a name.

Whether each step's form exists is for the repository to check at publish (it needs the
database): :func:`forms_of` lists them.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime

from processgpt.domain.errors import (
    ConditionError,
    DefinitionProblem,
    ProcessDefinitionInvalid,
)
from processgpt.domain.process.conditions import compile_condition
from processgpt.domain.process.model import (
    AgentMode,
    Flow,
    Node,
    NodeKind,
    ProcessGraph,
    TimerSpec,
)
from processgpt.domain.process.structure import inclusive_problems
from processgpt.domain.task import AGENT_ORCH_PATTERN

MAX_ID_LENGTH = 200
ID_SEPARATOR = "/"
"""Joins node ids into paths (an embedded sub-process's instance) and keys (a timer's node and
activation); refused inside an id."""
MAX_TEXT_CONDITION = 2000
MAX_DURATION_DAYS = 3650
_GATEWAYS = (NodeKind.EXCLUSIVE, NodeKind.PARALLEL, NodeKind.INCLUSIVE)
_CHOOSING = (NodeKind.EXCLUSIVE, NodeKind.INCLUSIVE)
_HOSTS = (NodeKind.TASK, NodeKind.CALL, NodeKind.SUBPROCESS)
_DURATION = re.compile(
    r"^P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$"
)
_CRON_FIELD = re.compile(r"^[0-9*/,\-?LW#A-Za-z]+$")

_Problem = Callable[[str | None, str], None]
"""Records one problem: ``problem(element_id, text)``."""


def check(graph: ProcessGraph) -> None:
    """Raise :class:`ProcessDefinitionInvalid` listing every problem of ``graph``."""
    found = problems(graph)
    if found:
        raise ProcessDefinitionInvalid(found)


def problems(graph: ProcessGraph) -> list[DefinitionProblem]:
    """Every problem of ``graph``, in document order; empty when it may be published."""
    found: list[DefinitionProblem] = []
    _unique_ids(graph, found)
    _graph(graph, found, inside=None)
    return found


def forms_of(graph: ProcessGraph) -> list[str]:
    """The form ids the steps of ``graph`` (sub-processes included) use, each once."""
    forms: dict[str, None] = {}
    for node in _all_nodes(graph):
        if node.activity is not None and node.activity.form_id:
            forms[node.activity.form_id] = None
    return list(forms)


def _all_nodes(graph: ProcessGraph) -> Iterator[Node]:
    for node in graph.nodes:
        yield node
        if node.subprocess is not None:
            yield from _all_nodes(node.subprocess)


def _unique_ids(graph: ProcessGraph, found: list[DefinitionProblem]) -> None:
    seen: set[str] = set()

    def visit(g: ProcessGraph) -> None:
        ids = [n.id for n in g.nodes] + [f.id for f in g.flows]
        ids += [b.id for n in g.nodes for b in n.boundary]
        for element_id in ids:
            if not element_id or len(element_id) > MAX_ID_LENGTH:
                found.append(DefinitionProblem(element_id[:50] or None, "id is empty or too long"))
            elif any(ord(c) < 32 for c in element_id):
                found.append(DefinitionProblem(repr(element_id), "id has control characters"))
            elif ID_SEPARATOR in element_id:
                found.append(DefinitionProblem(element_id, f"id contains {ID_SEPARATOR!r}"))
            elif element_id in seen:
                found.append(DefinitionProblem(element_id, "duplicate id"))
            seen.add(element_id)
        for n in g.nodes:
            if n.subprocess is not None:
                visit(n.subprocess)

    visit(graph)


def _graph(graph: ProcessGraph, found: list[DefinitionProblem], inside: str | None) -> None:
    where = f" (in sub-process {inside})" if inside else ""

    def problem(element_id: str | None, text: str) -> None:
        found.append(DefinitionProblem(element_id, text + where))

    ids = {n.id for n in graph.nodes}
    timer_ids = {b.id: n for n in graph.nodes for b in n.boundary}
    for flow in graph.flows:
        if flow.source not in ids and flow.source not in timer_ids:
            problem(flow.id, f"source {flow.source!r} does not exist")
        if flow.target not in ids:
            problem(flow.id, f"target {flow.target!r} does not exist")
    starts = graph.starts
    if not starts:
        problem(inside, "no start event")
    elif inside is not None and sum(1 for s in starts if s.timer is None) != 1:
        problem(inside, "a sub-process needs exactly one start event without a timer")
    for node in graph.nodes:
        _node(graph, node, problem)
        if node.subprocess is not None:
            _graph(node.subprocess, found, node.id)
    for flow in graph.flows:
        _flow_condition(graph, flow, problem)
    before = len(found)
    _reachability(graph, problem)
    if len(found) == before and all(f.target in ids for f in graph.flows):
        # Which join closes which inclusive split is read from the graph's structure, so it
        # is asked only of a graph whose flows all lead somewhere.
        for ambiguous in inclusive_problems(graph):
            problem(ambiguous.element_id, ambiguous.message)


def _node(graph: ProcessGraph, node: Node, problem: _Problem) -> None:
    _edges(graph, node, problem)
    if node.kind in _GATEWAYS:
        _gateway(graph, node, problem)
    elif node.default_flow is not None:
        problem(node.id, "only exclusive and inclusive gateways have a default flow")
    _activity(graph, node, problem)
    _event(node, problem)
    _boundary(graph, node, problem)


def _edges(graph: ProcessGraph, node: Node, problem: _Problem) -> None:
    incoming, outgoing = graph.incoming(node.id), graph.outgoing(node.id)
    if node.kind is NodeKind.START:
        if incoming:
            problem(node.id, "a start event has no incoming flows")
        if not outgoing:
            problem(node.id, "a start event needs an outgoing flow")
    elif node.kind is NodeKind.END:
        if outgoing:
            problem(node.id, "an end event has no outgoing flows")
    elif not outgoing:
        problem(node.id, f"nothing leaves this {node.kind.value}: add a flow (or an end event)")


def _activity(graph: ProcessGraph, node: Node, problem: _Problem) -> None:
    activity = node.activity
    if activity is None:
        if node.kind is NodeKind.TASK:
            problem(node.id, "a task without an activity")
        return
    days = activity.duration_days
    if days is not None and not 0 <= days <= MAX_DURATION_DAYS:
        problem(node.id, f"duration must be between 0 and {MAX_DURATION_DAYS} days")
    if activity.role is not None and activity.role not in {r.name for r in graph.roles}:
        problem(node.id, f"role {activity.role!r} is not declared")
    if activity.agent_mode is not AgentMode.NONE and not (activity.agent or activity.orchestration):
        problem(node.id, f"agentMode {activity.agent_mode.value} needs an agent to run it")
    for name in (activity.agent, activity.orchestration):
        if name is not None and not AGENT_ORCH_PATTERN.match(name):
            problem(
                node.id,
                f"agent {name!r} is not an agent name (1-64 of a-z, 0-9, '_', '.', ':', '-')",
            )


def _event(node: Node, problem: _Problem) -> None:
    kind = node.kind
    if kind is NodeKind.CALL and not node.called:
        problem(node.id, "a call activity must name the definition it calls")
    if kind is NodeKind.SUBPROCESS and node.subprocess is None:
        problem(node.id, "a sub-process without its content")
    if kind in (NodeKind.MESSAGE, NodeKind.SIGNAL) and not node.event_name:
        problem(node.id, f"a {kind.value} event needs a name")
    if kind is NodeKind.TIMER and node.timer is None:
        problem(node.id, "a timer event without a timer")
    if node.timer is not None:
        for text in _timer_problems(node.timer, start=kind is NodeKind.START):
            problem(node.id, text)


def _boundary(graph: ProcessGraph, node: Node, problem: _Problem) -> None:
    if node.boundary and node.kind not in _HOSTS:
        problem(node.id, f"boundary timers attach to activities, not to a {node.kind.value}")
    for timer in node.boundary:
        for text in _timer_problems(timer.timer, start=False):
            problem(timer.id, text)
        if not graph.outgoing(timer.id):
            problem(timer.id, "a boundary timer needs an outgoing flow")


def _gateway(graph: ProcessGraph, node: Node, problem: _Problem) -> None:
    incoming, outgoing = graph.incoming(node.id), graph.outgoing(node.id)
    if len(incoming) <= 1 and len(outgoing) <= 1:
        problem(node.id, "a gateway must split (several outgoing flows) or join (several incoming)")
    if node.kind is NodeKind.PARALLEL:
        if node.default_flow is not None:
            problem(node.id, "a parallel gateway has no default flow")
        for flow in outgoing:
            if flow.condition:
                problem(flow.id, "a flow leaving a parallel gateway has no condition")
        return
    out_ids = {f.id for f in outgoing}
    if node.default_flow is not None and node.default_flow not in out_ids:
        problem(node.id, f"default flow {node.default_flow!r} does not leave this gateway")
    if len(outgoing) > 1:
        for flow in outgoing:
            if flow.id == node.default_flow:
                if flow.condition:
                    problem(flow.id, "the default flow has no condition")
            elif not flow.condition:
                problem(
                    flow.id,
                    f"a flow leaving {node.kind.value} split {node.id} needs a condition "
                    "(or must be its default)",
                )


def _flow_condition(graph: ProcessGraph, flow: Flow, problem: _Problem) -> None:
    if flow.condition is None:
        return
    source = graph.node(flow.source) if graph.has_node(flow.source) else None
    if source is not None and source.kind is NodeKind.PARALLEL:
        return  # reported with its gateway
    if source is None or source.kind not in _CHOOSING:
        problem(flow.id, "conditions belong on flows leaving exclusive or inclusive gateways")
    if flow.condition_mode == "text":
        if len(flow.condition) > MAX_TEXT_CONDITION:
            problem(flow.id, f"a text condition may be at most {MAX_TEXT_CONDITION} characters")
        return
    if flow.condition_mode != "expression":
        problem(flow.id, f"condition mode {flow.condition_mode!r} is not expression or text")
        return
    names = [v.name for v in graph.variables]
    try:
        compile_condition(flow.condition, names)
    except ConditionError as exc:
        problem(flow.id, exc.message)


def _reachability(graph: ProcessGraph, problem: _Problem) -> None:
    seen: set[str] = set()
    queue = deque(s.id for s in graph.starts)
    while queue:
        node_id = queue.popleft()
        if node_id in seen or not graph.has_node(node_id):
            continue
        seen.add(node_id)
        node = graph.node(node_id)
        sources = [node_id, *(b.id for b in node.boundary)]
        queue.extend(f.target for s in sources for f in graph.outgoing(s))
    for node in graph.nodes:
        if node.id not in seen and node.kind is not NodeKind.START and graph.starts:
            problem(node.id, "not reachable from a start event")
    ends = [n for n in graph.nodes if n.kind is NodeKind.END]
    if graph.starts and not any(e.id in seen for e in ends):
        problem(None, "no end event is reachable from a start event")


def _timer_problems(timer: TimerSpec, *, start: bool) -> list[str]:
    given = [v for v in (timer.duration, timer.date, timer.cycle) if v]
    if len(given) != 1:
        return ["a timer needs exactly one of a duration, a date or a cycle"]
    if timer.duration is not None and not _DURATION.match(timer.duration):
        return [f"timer duration {timer.duration!r} is not an ISO 8601 duration (e.g. PT15M)"]
    if timer.date is not None and not _is_date(timer.date):
        return [f"timer date {timer.date!r} is not an ISO 8601 date-time with a time zone"]
    if timer.cycle is not None:
        if not start:
            return ["a timer cycle is allowed on start events only"]
        if not _is_cycle(timer.cycle):
            return [f"timer cycle {timer.cycle!r} is not R[n]/…/duration nor a cron expression"]
    return []


def _is_date(text: str) -> bool:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _is_cycle(text: str) -> bool:
    if text.startswith("R"):
        parts = text.split("/")
        if not re.match(r"^R\d*$", parts[0]) or len(parts) not in (2, 3):
            return False
        rest = parts[1:]
        durations = [p for p in rest if p.startswith("P")]
        dates = [p for p in rest if not p.startswith("P")]
        return (
            len(durations) == 1
            and all(_DURATION.match(d) for d in durations)
            and all(_is_date(d) for d in dates)
        )
    fields = text.split()
    return len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)

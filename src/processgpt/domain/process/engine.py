"""The pure process engine: ``start`` and ``advance`` an instance over a :class:`ProcessGraph`.

    step = start(graph, variables, now=now, roles=bindings)
    step = advance(graph, step.state, TaskCompleted("review", 1, {"approved": True}), now=now)

Contract:

* Pure and deterministic: no I/O, no clock (``now`` is the step's time: timers and SLA due
  dates are computed from it, history entries carry it), no randomness. The same graph, state,
  event, ``now`` and verdicts give an equal result.
* The result is a :class:`~.step.Step` (the new state, the decisions, the history): the
  execution layer applies all of it in one transaction with the instance row locked, or
  nothing. Or it is :class:`~.step.NeedsVerdicts` (see :mod:`.step` for the protocol of text
  conditions): nothing changed, the event was not consumed.
* An event that does not apply raises :class:`~.events.EventRejected` (a migration that
  cannot apply: :class:`~.events.MigrationRejected`); nothing changed.
* What goes wrong inside a definition (no flow holds, a condition fails, a bad timer, a
  failed task or child, a cycle of gateways) is never raised and never drops a branch: it is
  an incident on the token where it happened (status INCIDENT while one is open; other
  branches go on), and :class:`~.events.ResolveIncident` retries from there.
* The instance completes (decision ``InstanceCompleted``) when no token is left.
* ``graph`` must have passed publish-time validation (flows between existing nodes,
  conditions that compile, :func:`~.structure.inclusive_problems` empty); the engine does not
  re-validate it on every step.

Token semantics are in :mod:`.walk`; how results become variables in :mod:`.outputs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from processgpt.domain.process.events import (
    Cancel,
    ChildCompleted,
    ChildFailed,
    Event,
    EventRejected,
    MessageReceived,
    Migrate,
    MigrationRejected,
    ResolveIncident,
    SignalReceived,
    StartRejected,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)
from processgpt.domain.process.graph_index import index
from processgpt.domain.process.model import Node, NodeKind, ProcessGraph
from processgpt.domain.process.outputs import map_output, merge
from processgpt.domain.process.state import IncidentKind, InstanceState, Token, Wait
from processgpt.domain.process.step import (
    CancelTimer,
    HistoryKind,
    InstanceCancelled,
    NeedsVerdicts,
    Step,
    Verdict,
)
from processgpt.domain.process.walk import Walker

__all__ = ["advance", "start"]

_JOINS = (NodeKind.PARALLEL, NodeKind.INCLUSIVE)


def start(
    graph: ProcessGraph,
    variables: Mapping[str, Any] | None = None,
    *,
    now: datetime,
    roles: Mapping[str, str] | None = None,
    start_node: str | None = None,
    verdicts: Mapping[str, Verdict] | None = None,
) -> Step | NeedsVerdicts:
    """A new instance: a token leaves ``start_node`` (by default the graph's only START node
    without a timer, else the first START) and walks to its first waits. ``roles`` binds role
    names to users or groups (a role without a binding falls back to its default)."""
    node = _start_node(graph, start_node)
    state = InstanceState(variables=dict(variables or {}), roles=dict(roles or {}))
    walker = Walker(graph, state, now, verdicts)
    walker.activations[node.id] = 1
    walker.record(
        HistoryKind.INSTANCE_STARTED,
        node.id,
        1,
        definition=graph.id,
        variables=sorted(walker.variables),
        roles=dict(walker.roles),
    )
    walker.route(walker.new_token_id(), node.id, 1, ())
    return walker.finish()


def advance(
    graph: ProcessGraph,
    state: InstanceState,
    event: Event,
    *,
    now: datetime,
    verdicts: Mapping[str, Verdict] | None = None,
) -> Step | NeedsVerdicts:
    """The step ``event`` causes on ``state`` (which must have been produced over ``graph``;
    a :class:`Migrate` event moves it to ``event.target``, over which later steps run)."""
    if state.finished:
        raise EventRejected(f"the instance is {state.status.value}; it takes no more events")
    if isinstance(event, Migrate):
        return _migrate(graph, state, event, now, verdicts)
    walker = Walker(graph, state, now, verdicts)
    if isinstance(event, TaskCompleted | ChildCompleted):
        _completed(walker, event)
    elif isinstance(event, TaskFailed | ChildFailed):
        _failed(walker, event)
    elif isinstance(event, TimerFired):
        _timer_fired(walker, event)
    elif isinstance(event, MessageReceived):
        _message(walker, event)
    elif isinstance(event, SignalReceived):
        _signal(walker, event)
    elif isinstance(event, Cancel):
        _cancel(walker, event)
    else:
        _resolve(walker, event)
    return walker.finish()


def _start_node(graph: ProcessGraph, start_node: str | None) -> Node:
    if start_node is not None:
        if not graph.has_node(start_node) or graph.node(start_node).kind is not NodeKind.START:
            raise StartRejected(f"{start_node!r} is not a start node of {graph.id!r}")
        return graph.node(start_node)
    starts = graph.starts
    if not starts:
        raise StartRejected(f"process {graph.id!r} has no start node")
    plain = [n for n in starts if n.timer is None]
    return plain[0] if len(plain) == 1 else starts[0]


def _waiting(walker: Walker, wait: Wait, node_id: str, activation: int) -> Token:
    for token in walker.tokens.values():
        if token.wait is wait and token.node_id == node_id and token.activation == activation:
            return walker.take(token)
    raise EventRejected(
        f"no {wait.value} is open at {node_id!r} activation {activation} "
        "(completed, cancelled or never created)"
    )


def _completed(walker: Walker, event: TaskCompleted | ChildCompleted) -> None:
    is_task = isinstance(event, TaskCompleted)
    token = _waiting(walker, Wait.TASK if is_task else Wait.CHILD, event.node_id, event.activation)
    walker.drop_timers(token)
    node = walker.graph.node(token.node_id)
    walker.variables, written = map_output(
        node.activity if is_task else None, event.output, walker.variables
    )
    kind = HistoryKind.STEP_COMPLETED if is_task else HistoryKind.CHILD_COMPLETED
    walker.record(kind, token.node_id, token.activation, written=written)
    walker.route(token.id, token.node_id, token.activation, token.scope)


def _failed(walker: Walker, event: TaskFailed | ChildFailed) -> None:
    is_task = isinstance(event, TaskFailed)
    token = _waiting(walker, Wait.TASK if is_task else Wait.CHILD, event.node_id, event.activation)
    walker.drop_timers(token)
    kind = HistoryKind.STEP_FAILED if is_task else HistoryKind.CHILD_FAILED
    walker.record(kind, token.node_id, token.activation, error=event.error)
    incident = IncidentKind.TASK_FAILED if is_task else IncidentKind.CHILD_FAILED
    what = "step" if is_task else "child instance"
    reason = f"the {what} failed: {event.error}" if event.error else f"the {what} failed"
    walker.incident(incident, token, reason)


def _timer_fired(walker: Walker, event: TimerFired) -> None:
    timer = walker.timers.get(event.key)
    if timer is None:
        raise EventRejected(f"no timer {event.key!r} is armed (fired or cancelled already)")
    token = walker.tokens[timer.token_id]
    walker.record(
        HistoryKind.TIMER_FIRED,
        timer.node_id,
        timer.activation,
        key=timer.key,
        boundary=timer.boundary_id,
        interrupting=timer.interrupting,
    )
    if timer.boundary_id is None:
        walker.take(token)
        walker.drop_timers(token)
        walker.route(token.id, token.node_id, token.activation, token.scope)
    elif timer.interrupting:
        walker.take(token)
        walker.release(
            token, f"boundary timer {timer.boundary_id!r} interrupted it", keep_timer=timer.key
        )
        walker.route(token.id, timer.boundary_id, timer.activation, token.scope)
    else:
        del walker.timers[timer.key]
        walker.settle(replace(token, timers=tuple(k for k in token.timers if k != timer.key)))
        walker.route(walker.new_token_id(), timer.boundary_id, timer.activation, token.scope)


def _catching(walker: Walker, wait: Wait, name: str) -> list[Token]:
    return [
        t
        for t in walker.tokens.values()
        if t.wait is wait and walker.graph.node(t.node_id).event_name == name
    ]


def _message(walker: Walker, event: MessageReceived) -> None:
    waiting = _catching(walker, Wait.MESSAGE, event.name)
    if not waiting:
        raise EventRejected(f"no token waits for a message named {event.name!r}")
    _caught(walker, waiting[:1], HistoryKind.MESSAGE_RECEIVED, event.name, event.payload)


def _signal(walker: Walker, event: SignalReceived) -> None:
    waiting = _catching(walker, Wait.SIGNAL, event.name)
    _caught(walker, waiting, HistoryKind.SIGNAL_RECEIVED, event.name, event.payload)


def _caught(
    walker: Walker,
    tokens: list[Token],
    kind: HistoryKind,
    name: str,
    payload: Mapping[str, Any],
) -> None:
    if not tokens:
        return
    walker.variables = merge(walker.variables, payload)
    for token in tokens:
        walker.take(token)
        walker.record(kind, token.node_id, token.activation, name=name, keys=sorted(payload))
        walker.route(token.id, token.node_id, token.activation, token.scope)


def _cancel(walker: Walker, event: Cancel) -> None:
    reason = event.reason or "the instance was cancelled"
    for token in list(walker.tokens.values()):
        walker.take(token)
        walker.release(token, reason)
    walker.incidents.clear()
    walker.cancelled = True
    walker.decisions.append(InstanceCancelled(reason))
    walker.record(HistoryKind.INSTANCE_CANCELLED, reason=reason)


def _resolve(walker: Walker, event: ResolveIncident) -> None:
    incident = walker.incidents.pop(event.incident_id, None)
    if incident is None:
        raise EventRejected(f"no open incident {event.incident_id!r}")
    token = walker.take(walker.tokens[incident.token_id])
    walker.variables = merge(walker.variables, event.variables)
    walker.record(
        HistoryKind.INCIDENT_RESOLVED,
        token.node_id,
        token.activation,
        id=incident.id,
        variables=sorted(event.variables),
    )
    if incident.kind in (IncidentKind.NO_FLOW, IncidentKind.CONDITION):
        walker.route(token.id, token.node_id, token.activation, token.scope)
    else:
        walker.enter(token.id, token.node_id, token.scope, token.via)


def _migrate(
    source: ProcessGraph,
    state: InstanceState,
    event: Migrate,
    now: datetime,
    verdicts: Mapping[str, Verdict] | None,
) -> Step | NeedsVerdicts:
    target, mapping = event.target, event.mapping
    source_ix, target_ix = index(source), index(target)
    problems = [
        f"mapping names {old!r}, which is not a node of the running version"
        for old in mapping
        if not source_ix.is_source(old)
    ]
    problems += [
        f"mapping sends {old!r} to {new!r}, which is not a node of the target version"
        for old, new in mapping.items()
        if not target_ix.is_source(new)
    ]
    moves: list[tuple[Token, str]] = []
    for token in state.tokens:
        new_id = mapping.get(token.node_id, token.node_id)
        at_node = target.has_node(new_id) or (
            token.wait is Wait.INCIDENT and target_ix.is_source(new_id)
        )
        if not at_node:
            problems.append(
                f"a token waits at {token.node_id!r}, which the target version lacks: map it "
                "to a node"
            )
        elif token.wait is Wait.JOIN and (
            target.node(new_id).kind not in _JOINS
            or token.via not in {f.id for f in target.incoming(new_id)}
        ):
            problems.append(
                f"a token waits at join {token.node_id!r} on flow {token.via!r}, which the "
                f"target's {new_id!r} does not join"
            )
        else:
            moves.append((token, new_id))
    if problems:
        raise MigrationRejected(problems)
    walker = Walker(target, state, now, verdicts)
    walker.record(
        HistoryKind.MIGRATED,
        source=source.id,
        target=target.id,
        mapping=dict(mapping),
        moves=[{"token": t.id, "from": t.node_id, "to": new} for t, new in moves],
    )
    for token, new_id in moves:
        _move(walker, source, token, new_id)
    return walker.finish()


def _move(walker: Walker, source: ProcessGraph, token: Token, new_id: str) -> None:
    target = walker.graph
    if token.wait in (Wait.JOIN, Wait.INCIDENT):
        if new_id != token.node_id:
            walker.settle(replace(token, node_id=new_id))
            if token.incident is not None:
                incident = walker.incidents[token.incident]
                walker.incidents[token.incident] = replace(incident, node_id=new_id)
        return
    same_kind = source.node(token.node_id).kind is target.node(new_id).kind
    if new_id != token.node_id or not same_kind:
        walker.take(token)
        walker.release(token, f"migrated to {target.id!r}")
        walker.enter(token.id, new_id, token.scope)
        return
    if token.wait not in (Wait.TASK, Wait.CHILD):
        return
    # Same step, new version: keep the open work, make its boundary timers the target's.
    node = target.node(new_id)
    wanted = {b.id: b for b in node.boundary}
    kept: list[str] = []
    for key in token.timers:
        timer = walker.timers[key]
        if timer.boundary_id in wanted:
            kept.append(key)
        else:
            del walker.timers[key]
            walker.decisions.append(CancelTimer(key))
            walker.record(HistoryKind.TIMER_CANCELLED, timer.node_id, timer.activation, key=key)
    armed = {walker.timers[k].boundary_id for k in kept}
    fresh = walker.boundary_timers(node, token.activation, token.id)
    if isinstance(fresh, str):
        raise MigrationRejected([fresh])
    new_keys = walker.arm([t for t in fresh if t.boundary_id not in armed])
    walker.settle(replace(token, timers=(*kept, *new_keys)))

"""The token walk: one step's working copy of an instance, and how tokens move through nodes.

:class:`Walker` is the mutable half of the pure engine (:mod:`.engine` is the other): it is
built from an :class:`~.state.InstanceState`, moved by the engine's event handlers, and
frozen again into a :class:`~.step.Step`. It never reads a clock (``now`` is given) or draws
a random number: ids are ``t<n>`` (tokens) and ``i<n>`` (incidents) from the state's serial.

How a token moves (the issue's semantics):

* It *arrives* at a node: END consumes it; a TASK creates its work item (and arms its
  boundary timers); CALL/SUBPROCESS start a child; TIMER arms a timer; MESSAGE/SIGNAL wait;
  a gateway with two or more incoming flows of kind PARALLEL or INCLUSIVE is a join (the token
  waits there); any other node is left at once.
* It *leaves* a node along the node's outgoing flows (by priority, then document order):
  EXCLUSIVE takes the first flow whose condition holds (a flow without one holds), else the
  default flow; PARALLEL takes every flow; INCLUSIVE gateways and every other node take every
  flow whose condition holds, else the default. No flow and no default: an incident, the
  token waits at the node and resolving re-evaluates. A node without outgoing flows consumes
  the token (an implicit end).
* A parallel join fires when its tokens of one scope cover every incoming flow (the oldest
  token per flow is taken, so a join in a loop fires once per round). An inclusive join fires
  for a scope (see :mod:`.structure`) when no other live token of that scope can still reach
  it; it is checked once no token is moving, so branches still on their way count.
* Every arrival counts against a budget of :data:`MAX_ARRIVALS` per step; a token still moving
  when it runs out gets an incident (a cycle of gateways never hangs the step).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from processgpt.domain.process.conditions import ConditionError, condition_values
from processgpt.domain.process.graph_index import GraphIndex, index
from processgpt.domain.process.model import Activity, Flow, Node, NodeKind, ProcessGraph
from processgpt.domain.process.outputs import task_input
from processgpt.domain.process.state import (
    Incident,
    IncidentKind,
    InstanceState,
    InstanceStatus,
    Scope,
    Timer,
    Token,
    Wait,
)
from processgpt.domain.process.step import (
    CancelChild,
    CancelTask,
    CancelTimer,
    CreateTask,
    CreateTimer,
    Decision,
    HistoryEntry,
    HistoryKind,
    InstanceCompleted,
    NeedsVerdicts,
    OpenIncident,
    Question,
    StartChild,
    Step,
    Verdict,
)
from processgpt.domain.process.timers import TimerError, due_at

MAX_ARRIVALS = 1000
"""Node arrivals one step may make before the tokens still moving get an incident."""


class Routing(enum.Enum):
    FIRST = "first"
    """Exclusive: the first flow that holds."""
    ALL = "all"
    """Inclusive gateways, activities, events: every flow that holds."""
    EVERY = "every"
    """Parallel: every flow, conditions ignored."""


def routing_of(node: Node | None) -> Routing:
    if node is None:
        return Routing.ALL
    if node.kind is NodeKind.EXCLUSIVE:
        return Routing.FIRST
    if node.kind is NodeKind.PARALLEL:
        return Routing.EVERY
    return Routing.ALL


@dataclass(frozen=True)
class _Arrival:
    token_id: str
    node_id: str
    via: str | None
    scope: Scope

    def at(self, node_id: str, activation: int) -> Token:
        """This token as it stands at ``node_id`` (to park it with an incident)."""
        return Token(self.token_id, node_id, activation, Wait.INCIDENT, self.via, self.scope)


class Walker:
    """One step in progress. Handlers call :meth:`take` / :meth:`route` / :meth:`enter` /
    :meth:`incident`, then :meth:`finish` walks every moving token to a wait and freezes."""

    def __init__(
        self,
        graph: ProcessGraph,
        state: InstanceState,
        now: datetime,
        verdicts: Mapping[str, Verdict] | None,
    ) -> None:
        self.graph = graph
        self.ix: GraphIndex = index(graph)
        self.now = now
        self.variables: dict[str, Any] = dict(state.variables)
        self.tokens: dict[str, Token] = {t.id: t for t in state.tokens}
        self.activations: dict[str, int] = dict(state.activations)
        self.timers: dict[str, Timer] = dict(state.timers)
        self.incidents: dict[str, Incident] = dict(state.incidents)
        self.roles = state.roles
        self.serial = state.serial
        self.verdicts: Mapping[str, Verdict] = verdicts or {}
        self.cancelled = False
        self.decisions: list[Decision] = []
        self.history: list[HistoryEntry] = []
        self.questions: dict[str, Question] = {}
        self._moving: deque[_Arrival] = deque()
        self._budget = MAX_ARRIVALS

    # -- bookkeeping ------------------------------------------------------------------------

    def new_token_id(self) -> str:
        self.serial += 1
        return f"t{self.serial}"

    def record(
        self,
        kind: HistoryKind,
        node_id: str | None = None,
        activation: int | None = None,
        /,
        **data: Any,
    ) -> None:
        self.history.append(HistoryEntry(kind, self.now, node_id, activation, data))

    def take(self, token: Token) -> Token:
        """Remove a waiting token (it is about to move, end, or be replaced)."""
        del self.tokens[token.id]
        return token

    def settle(self, token: Token) -> None:
        self.tokens[token.id] = token

    def release(self, token: Token, reason: str, *, keep_timer: str | None = None) -> None:
        """Cancel the open work of a token: its task or child, and its timers."""
        if token.wait is Wait.TASK:
            self.decisions.append(CancelTask(token.node_id, token.activation, reason))
            self.record(HistoryKind.STEP_CANCELLED, token.node_id, token.activation, reason=reason)
        elif token.wait is Wait.CHILD:
            self.decisions.append(CancelChild(token.node_id, token.activation, reason))
            self.record(HistoryKind.STEP_CANCELLED, token.node_id, token.activation, reason=reason)
        self.drop_timers(token, keep=keep_timer)

    def drop_timers(self, token: Token, *, keep: str | None = None) -> None:
        for key in token.timers:
            timer = self.timers.pop(key, None)
            if key == keep or timer is None:
                continue
            self.decisions.append(CancelTimer(key))
            self.record(HistoryKind.TIMER_CANCELLED, timer.node_id, timer.activation, key=key)

    def incident(self, kind: IncidentKind, where: Token, reason: str) -> None:
        """Park the token ``where`` says (id, node, activation, scope, flow) with a new open
        incident; resolving it resumes from there."""
        self.serial += 1
        incident_id = f"i{self.serial}"
        self.incidents[incident_id] = Incident(
            incident_id, kind, where.node_id, where.activation, where.id, reason, self.now
        )
        self.settle(replace(where, wait=Wait.INCIDENT, timers=(), incident=incident_id))
        self.decisions.append(
            OpenIncident(incident_id, kind, where.node_id, where.activation, reason)
        )
        self.record(
            HistoryKind.INCIDENT,
            where.node_id,
            where.activation,
            id=incident_id,
            kind=kind.value,
            reason=reason,
        )

    # -- moving tokens ----------------------------------------------------------------------

    def enter(self, token_id: str, node_id: str, scope: Scope, via: str | None = None) -> None:
        """A token is on its way to ``node_id`` (it arrives during :meth:`finish`)."""
        self._moving.append(_Arrival(token_id, node_id, via, scope))

    def route(self, token_id: str, source_id: str, activation: int, scope: Scope) -> None:
        """Leave ``source_id`` (a node, or a boundary timer) along the flows that hold."""
        node = self.graph.node(source_id) if self.graph.has_node(source_id) else None
        flows = self.ix.ordered.get(source_id, ())
        if not flows:
            self.record(HistoryKind.END_REACHED, source_id, activation, implicit=True)
            return
        # Leaving an inclusive split opens its scope for the tokens it sends.
        inner = (*scope, (source_id, activation)) if source_id in self.ix.joins else scope
        if (
            len(flows) == 1
            and not flows[0].condition
            and (node is None or node.default_flow != flows[0].id)
        ):
            # The one way out, unconditional (a sequence): taken whatever the routing,
            # nothing evaluated, no decision to record.
            self.enter(token_id, flows[0].target, inner, flows[0].id)
            return
        here = Token(token_id, source_id, activation, Wait.INCIDENT, scope=scope)
        chosen = self._choose(here, node, flows)
        if chosen is None:
            return
        taken, evaluated = chosen
        if evaluated or (len(flows) > 1 and node is not None and node.kind in _GATEWAYS):
            self.record(
                HistoryKind.GATEWAY_DECISION,
                source_id,
                activation,
                taken=[{"flow": f.id, "target": f.target, "why": why} for f, why in taken],
                evaluated=evaluated,
            )
        for i, (flow, _) in enumerate(taken):
            self.enter(token_id if i == 0 else self.new_token_id(), flow.target, inner, flow.id)

    def _choose(
        self, here: Token, node: Node | None, flows: tuple[Flow, ...]
    ) -> tuple[list[tuple[Flow, str]], list[dict[str, Any]]] | None:
        """The flows to take and the conditions evaluated; None when the token cannot leave
        now (an incident was opened, or verdicts are needed)."""
        mode = routing_of(node)
        if mode is Routing.EVERY:
            return [(f, "parallel") for f in flows], []
        default_id = node.default_flow if node is not None else None
        candidates = [f for f in flows if f.id != default_id]
        taken: list[tuple[Flow, str]] = []
        evaluated: list[dict[str, Any]] = []
        for position, flow in enumerate(candidates):
            if self._unjudged(flow):
                self._ask(here.node_id, candidates[position:])
                return None
            try:
                holds, entry = self._holds(flow)
            except ConditionError as exc:
                self.incident(IncidentKind.CONDITION, here, exc.message)
                return None
            if entry is not None:
                evaluated.append(entry)
            if holds:
                taken.append((flow, "unconditional" if entry is None else entry["why"]))
                if mode is Routing.FIRST:
                    break
        if not taken:
            default = next((f for f in flows if f.id == default_id), None)
            if default is None:
                reason = f"no outgoing flow of {here.node_id!r} holds and it has no default flow"
                self.incident(IncidentKind.NO_FLOW, here, reason)
                if evaluated:
                    self.record(
                        HistoryKind.GATEWAY_DECISION,
                        here.node_id,
                        here.activation,
                        taken=[],
                        evaluated=evaluated,
                    )
                return None
            taken = [(default, "default")]
        return taken, evaluated

    def _unjudged(self, flow: Flow) -> bool:
        return (
            bool(flow.condition)
            and flow.condition_mode == "text"
            and (flow.id not in self.verdicts)
        )

    def _ask(self, source_id: str, flows: tuple[Flow, ...] | list[Flow]) -> None:
        for flow in flows:
            if self._unjudged(flow):
                self.questions.setdefault(
                    flow.id, Question(flow.id, source_id, flow.condition or "", flow.target)
                )

    def _holds(self, flow: Flow) -> tuple[bool, dict[str, Any] | None]:
        if not flow.condition:
            return True, None
        if flow.condition_mode == "text":
            verdict = self.verdicts[flow.id]
            if verdict.error is not None:
                raise ConditionError(
                    f"the condition of {flow.id!r} could not be judged: {verdict.error}"
                )
            return verdict.holds, {
                "flow": flow.id,
                "condition": flow.condition,
                "mode": "text",
                "result": verdict.holds,
                "reasoning": verdict.reasoning,
                "why": "verdict",
            }
        # Declared variables with a path (ProcessGPT's conditionData: a form's field named
        # alone) are read from where the path points.
        result = self.ix.condition(flow).evaluate(
            condition_values(self.graph.variables, self.variables)
        )
        return result, {
            "flow": flow.id,
            "condition": flow.condition,
            "mode": "expression",
            "result": result,
            "why": "condition",
        }

    def _arrive(self, a: _Arrival) -> None:
        node = self.graph.node(a.node_id)
        if self._budget <= 0:
            reason = (
                f"the walk did not reach a wait within {MAX_ARRIVALS} arrivals "
                "(a cycle of gateways?)"
            )
            last = self.activations.get(node.id, 0)
            self.incident(IncidentKind.WALK_LIMIT, a.at(node.id, last), reason)
            return
        self._budget -= 1
        activation = self.activations.get(node.id, 0) + 1
        self.activations[node.id] = activation
        kind = node.kind
        if kind is NodeKind.END:
            self.record(HistoryKind.END_REACHED, node.id, activation)
        elif kind is NodeKind.TASK:
            self._create_task(node, a, activation)
        elif kind in (NodeKind.CALL, NodeKind.SUBPROCESS):
            self._start_child(node, a, activation)
        elif kind is NodeKind.TIMER:
            self._arm_timer(node, a, activation)
        elif kind in (NodeKind.MESSAGE, NodeKind.SIGNAL):
            wait = Wait.MESSAGE if kind is NodeKind.MESSAGE else Wait.SIGNAL
            self.settle(Token(a.token_id, node.id, activation, wait, scope=a.scope))
        elif (
            kind in (NodeKind.PARALLEL, NodeKind.INCLUSIVE)
            and len(self.graph.incoming(node.id)) > 1
        ):
            self.settle(Token(a.token_id, node.id, activation, Wait.JOIN, a.via, a.scope))
            if kind is NodeKind.PARALLEL:
                self._fire_parallel(node, a.scope)
        else:
            self.route(a.token_id, node.id, activation, a.scope)

    def boundary_timers(self, node: Node, activation: int, token_id: str) -> list[Timer] | str:
        timers: list[Timer] = []
        for boundary in node.boundary:
            try:
                due = due_at(boundary.timer, self.now)
            except TimerError as exc:
                return f"boundary timer {boundary.id!r}: {exc.message}"
            key = f"{boundary.id}/{activation}"
            timers.append(
                Timer(key, node.id, activation, token_id, due, boundary.id, boundary.interrupting)
            )
        return timers

    def arm(self, timers: list[Timer]) -> tuple[str, ...]:
        for timer in timers:
            self.timers[timer.key] = timer
            self.decisions.append(
                CreateTimer(
                    timer.key,
                    timer.node_id,
                    timer.activation,
                    timer.due_at,
                    timer.boundary_id,
                    timer.interrupting,
                )
            )
            self.record(
                HistoryKind.TIMER_SET,
                timer.node_id,
                timer.activation,
                key=timer.key,
                due_at=timer.due_at.isoformat(),
                boundary=timer.boundary_id,
            )
        return tuple(t.key for t in timers)

    def _create_task(self, node: Node, a: _Arrival, activation: int) -> None:
        timers = self.boundary_timers(node, activation, a.token_id)
        if isinstance(timers, str):
            self.incident(IncidentKind.TIMER, a.at(node.id, activation), timers)
            return
        activity = node.activity or Activity()
        due = (
            self.now + timedelta(days=activity.duration_days)
            if activity.duration_days is not None
            else None
        )
        assignee = self._assignee(activity.role)
        self.decisions.append(
            CreateTask(
                node.id,
                activation,
                node.name,
                activity,
                assignee,
                task_input(activity, self.variables),
                due,
            )
        )
        self.record(
            HistoryKind.STEP_STARTED,
            node.id,
            activation,
            name=node.name,
            role=activity.role,
            assignee=assignee,
            agent=activity.agent,
            agent_mode=activity.agent_mode.value,
            due_at=None if due is None else due.isoformat(),
        )
        keys = self.arm(timers)
        self.settle(Token(a.token_id, node.id, activation, Wait.TASK, scope=a.scope, timers=keys))

    def _assignee(self, role: str | None) -> str | None:
        if role is None:
            return None
        bound = self.roles.get(role)
        if bound is not None:
            return bound
        return next((r.default for r in self.graph.roles if r.name == role), None)

    def _start_child(self, node: Node, a: _Arrival, activation: int) -> None:
        timers = self.boundary_timers(node, activation, a.token_id)
        if isinstance(timers, str):
            self.incident(IncidentKind.TIMER, a.at(node.id, activation), timers)
            return
        self.decisions.append(
            StartChild(node.id, activation, node.called, node.subprocess, dict(self.variables))
        )
        self.record(HistoryKind.CHILD_STARTED, node.id, activation, called=node.called)
        keys = self.arm(timers)
        self.settle(Token(a.token_id, node.id, activation, Wait.CHILD, scope=a.scope, timers=keys))

    def _arm_timer(self, node: Node, a: _Arrival, activation: int) -> None:
        try:
            if node.timer is None:
                raise TimerError(f"timer event {node.id!r} has no timer definition")
            due = due_at(node.timer, self.now)
        except TimerError as exc:
            self.incident(IncidentKind.TIMER, a.at(node.id, activation), exc.message)
            return
        keys = self.arm([Timer(f"{node.id}/{activation}", node.id, activation, a.token_id, due)])
        self.settle(Token(a.token_id, node.id, activation, Wait.TIMER, scope=a.scope, timers=keys))

    # -- joins ------------------------------------------------------------------------------

    def _fire_parallel(self, node: Node, scope: Scope) -> None:
        chosen: dict[str, Token] = {}
        for token in self.tokens.values():
            if (
                token.node_id == node.id
                and token.wait is Wait.JOIN
                and token.scope == scope
                and token.via is not None
            ):
                chosen.setdefault(token.via, token)
        incoming = self.graph.incoming(node.id)
        if not all(f.id in chosen for f in incoming):
            return
        merged = [chosen[f.id] for f in incoming]
        self._fire(node, merged, scope)

    def _fire(self, node: Node, merged: list[Token], scope: Scope) -> None:
        for token in merged:
            self.take(token)
        activation = self.activations.get(node.id, 0)
        self.record(
            HistoryKind.JOIN_FIRED,
            node.id,
            activation,
            tokens=[t.id for t in merged],
            flows=[t.via for t in merged],
        )
        if scope and self.ix.joins.get(scope[-1][0]) == node.id:
            scope = scope[:-1]
        self.route(merged[0].id, node.id, activation, scope)

    def _fire_inclusive(self) -> bool:
        """Fire the first inclusive join group nothing can still reach; True when one fired."""
        if not self.ix.has_inclusive:
            return False
        groups: dict[tuple[str, Scope], list[Token]] = {}
        for token in self.tokens.values():
            if token.wait is Wait.JOIN and self.graph.node(token.node_id).kind is (
                NodeKind.INCLUSIVE
            ):
                groups.setdefault((token.node_id, token.scope), []).append(token)
        for (join_id, scope), group in groups.items():
            members = {t.id for t in group}
            depth = len(scope)
            blocked = any(
                t.id not in members
                and t.scope[:depth] == scope
                and (t.node_id == join_id or join_id in self.ix.reach.get(t.node_id, ()))
                for t in self.tokens.values()
            )
            if not blocked:
                self._fire(self.graph.node(join_id), group, scope)
                return True
        return False

    # -- the end of a step ------------------------------------------------------------------

    def finish(self) -> Step | NeedsVerdicts:
        """Walk every moving token until it waits, then freeze the step."""
        while True:
            while self._moving:
                self._arrive(self._moving.popleft())
            if self.questions or not self._fire_inclusive():
                break
        if self.questions:
            return NeedsVerdicts(tuple(self.questions.values()), dict(self.variables))
        if self.cancelled:
            status = InstanceStatus.CANCELLED
        elif not self.tokens:
            status = InstanceStatus.COMPLETED
            self.decisions.append(InstanceCompleted(dict(self.variables)))
            self.record(HistoryKind.INSTANCE_COMPLETED)
        elif self.incidents:
            status = InstanceStatus.INCIDENT
        else:
            status = InstanceStatus.RUNNING
        state = InstanceState(
            status=status,
            variables=self.variables,
            tokens=tuple(self.tokens.values()),
            activations=self.activations,
            timers=self.timers,
            incidents=self.incidents,
            roles=self.roles,
            serial=self.serial,
        )
        return Step(state, tuple(self.decisions), tuple(self.history))


_GATEWAYS = (NodeKind.EXCLUSIVE, NodeKind.INCLUSIVE, NodeKind.PARALLEL)

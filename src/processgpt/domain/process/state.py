"""The state of one process instance between two steps of the engine.

:class:`InstanceState` is everything :mod:`.engine` needs to take the next step, and nothing
else: it is stored as JSON with the instance (``bpm_proc_inst``) and round-trips exactly
through :meth:`InstanceState.to_json` / :meth:`InstanceState.from_json`. It is immutable; the
engine returns a new one with each step.

Tokens. Every place where the instance waits is a :class:`Token`: at a task (for its
completion), a timer, a message or signal catch event, a child instance, a join (for the
other branches), or an incident. A token's ``activation`` is the number of the arrival at its
node (1, 2, … per node and instance): a loop back to an activity is a new activation, and
``(instance, node id, activation)`` is the idempotency key of the work created for it (the
``todolist`` row, the timer, the child instance). A token's ``scope`` lists the inclusive
splits it descends from (split id, activation) whose join has not fired yet.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Scope = tuple[tuple[str, int], ...]
"""The open inclusive splits a token descends from, outermost first: (split id, activation)."""


class InstanceStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    """No token is left. Terminal."""
    INCIDENT = "INCIDENT"
    """At least one incident is open; branches without one go on."""
    CANCELLED = "CANCELLED"
    """Terminal."""


class Wait(enum.StrEnum):
    """What a token waits for."""

    TASK = "task"
    """``TaskCompleted`` / ``TaskFailed`` of its node and activation."""
    TIMER = "timer"
    """``TimerFired`` of its intermediate timer."""
    MESSAGE = "message"
    SIGNAL = "signal"
    CHILD = "child"
    """``ChildCompleted`` / ``ChildFailed`` of its node and activation."""
    JOIN = "join"
    """The other branches of a parallel or inclusive join."""
    INCIDENT = "incident"
    """``ResolveIncident`` of its open incident."""


class IncidentKind(enum.StrEnum):
    NO_FLOW = "no_flow"
    """A split where no condition holds and there is no default flow."""
    CONDITION = "condition"
    """A condition failed to evaluate (or to compile)."""
    TASK_FAILED = "task_failed"
    """An agent step exhausted its attempts."""
    CHILD_FAILED = "child_failed"
    """A child instance (call activity, sub-process) failed."""
    TIMER = "timer"
    """A timer definition that cannot be scheduled."""
    WALK_LIMIT = "walk_limit"
    """The walk did not reach a wait state within its step budget (a cycle of gateways)."""
    NO_PATH = "no_path"
    """A token reached a node it cannot leave (no outgoing flow, unknown kind)."""


@dataclass(frozen=True)
class Token:
    id: str
    node_id: str
    activation: int
    wait: Wait
    via: str | None = None
    """JOIN tokens: the flow they arrived by."""
    scope: Scope = ()
    timers: tuple[str, ...] = ()
    """Keys of the timers armed for this token (its intermediate timer, its boundary timers)."""
    incident: str | None = None
    """INCIDENT tokens: the open incident's id."""


@dataclass(frozen=True)
class Timer:
    """An armed timer. ``key`` is unique within the instance: ``<node id>/<activation>`` for an
    intermediate timer, ``<boundary id>/<activation of the task>`` for a boundary timer."""

    key: str
    node_id: str
    activation: int
    token_id: str
    due_at: datetime
    boundary_id: str | None = None
    interrupting: bool = False


@dataclass(frozen=True)
class Incident:
    id: str
    kind: IncidentKind
    node_id: str
    activation: int
    token_id: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class InstanceState:
    """One instance between two steps (see the module's docstring). The mappings are not to
    be mutated; the engine builds new ones."""

    status: InstanceStatus = InstanceStatus.RUNNING
    variables: Mapping[str, Any] = field(default_factory=dict)
    tokens: tuple[Token, ...] = ()
    activations: Mapping[str, int] = field(default_factory=dict)
    """Arrivals so far per node id (the last activation number used)."""
    timers: Mapping[str, Timer] = field(default_factory=dict)
    incidents: Mapping[str, Incident] = field(default_factory=dict)
    """Open incidents by id (a resolved incident is removed; history keeps it)."""
    roles: Mapping[str, str] = field(default_factory=dict)
    """Role bindings given at start: role name -> user or group."""
    serial: int = 0
    """The last number used for a token or incident id (ids are derived, never random)."""

    @property
    def finished(self) -> bool:
        return self.status in (InstanceStatus.COMPLETED, InstanceStatus.CANCELLED)

    @property
    def current_activity_ids(self) -> list[str]:
        """The nodes where the instance waits, each once, in token order (``bpm_proc_inst.
        current_activity_ids``): tasks, events, child instances, joins and incidents (a token
        whose routing from a boundary timer failed waits at the boundary timer's id)."""
        return list(dict.fromkeys(t.node_id for t in self.tokens))

    def token(self, token_id: str) -> Token:
        for token in self.tokens:
            if token.id == token_id:
                return token
        raise KeyError(token_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "variables": dict(self.variables),
            "tokens": [_token_json(t) for t in self.tokens],
            "activations": dict(self.activations),
            "timers": [_timer_json(t) for t in self.timers.values()],
            "incidents": [_incident_json(i) for i in self.incidents.values()],
            "roles": dict(self.roles),
            "serial": self.serial,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InstanceState:
        timers = [_timer_from_json(t) for t in data.get("timers", ())]
        incidents = [_incident_from_json(i) for i in data.get("incidents", ())]
        return cls(
            status=InstanceStatus(data["status"]),
            variables=dict(data.get("variables", {})),
            tokens=tuple(_token_from_json(t) for t in data.get("tokens", ())),
            activations={str(k): int(v) for k, v in data.get("activations", {}).items()},
            timers={t.key: t for t in timers},
            incidents={i.id: i for i in incidents},
            roles=dict(data.get("roles", {})),
            serial=int(data.get("serial", 0)),
        )


def _token_json(token: Token) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": token.id,
        "node_id": token.node_id,
        "activation": token.activation,
        "wait": token.wait.value,
    }
    if token.via is not None:
        data["via"] = token.via
    if token.scope:
        data["scope"] = [[split, activation] for split, activation in token.scope]
    if token.timers:
        data["timers"] = list(token.timers)
    if token.incident is not None:
        data["incident"] = token.incident
    return data


def _token_from_json(data: Mapping[str, Any]) -> Token:
    return Token(
        id=data["id"],
        node_id=data["node_id"],
        activation=int(data["activation"]),
        wait=Wait(data["wait"]),
        via=data.get("via"),
        scope=tuple((str(s), int(a)) for s, a in data.get("scope", ())),
        timers=tuple(data.get("timers", ())),
        incident=data.get("incident"),
    )


def _timer_json(timer: Timer) -> dict[str, Any]:
    return {
        "key": timer.key,
        "node_id": timer.node_id,
        "activation": timer.activation,
        "token_id": timer.token_id,
        "due_at": timer.due_at.isoformat(),
        "boundary_id": timer.boundary_id,
        "interrupting": timer.interrupting,
    }


def _timer_from_json(data: Mapping[str, Any]) -> Timer:
    return Timer(
        key=data["key"],
        node_id=data["node_id"],
        activation=int(data["activation"]),
        token_id=data["token_id"],
        due_at=datetime.fromisoformat(data["due_at"]),
        boundary_id=data.get("boundary_id"),
        interrupting=bool(data.get("interrupting", False)),
    )


def _incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "kind": incident.kind.value,
        "node_id": incident.node_id,
        "activation": incident.activation,
        "token_id": incident.token_id,
        "reason": incident.reason,
        "at": incident.at.isoformat(),
    }


def _incident_from_json(data: Mapping[str, Any]) -> Incident:
    return Incident(
        id=data["id"],
        kind=IncidentKind(data["kind"]),
        node_id=data["node_id"],
        activation=int(data["activation"]),
        token_id=data["token_id"],
        reason=data["reason"],
        at=datetime.fromisoformat(data["at"]),
    )

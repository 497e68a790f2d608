"""What one step of the engine decides: the new state, the work to create or cancel, and the
history to append. The execution layer applies a :class:`Step` in one transaction.

Every decision carries its idempotency key: ``(node id, activation)`` for tasks and child
instances, ``key`` for timers, ``id`` for incidents, so applying a step twice changes nothing.

Text conditions (``condition_mode == "text"``). The engine cannot judge them, so when a walk
reaches a split with such a flow and no verdict for it, the engine returns
:class:`NeedsVerdicts` instead of a step. The protocol:

1. ``advance(graph, state, event, now=..., verdicts=known)`` returns ``NeedsVerdicts``: the
   event was NOT consumed and nothing is to be written. ``questions`` lists every text flow
   the walk needed and had no verdict for; ``variables`` is what they must be judged on.
2. The caller asks the ``llm`` agent for each question, outside any transaction, and gets a
   :class:`Verdict` per flow id.
3. The caller calls ``advance`` again with the state as stored (re-read under the instance
   lock), the same event, and all verdicts so far (``known | new``). That returns a step, or
   ``NeedsVerdicts`` for flows reached only now (a later split): back to 2. Each round asks
   only flows without a verdict, so the rounds end.

Verdicts and their reasoning are written into the history of the step that used them (the
gateway decision), so routing is replayable from history alone.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processgpt.domain.process.model import Activity, ProcessGraph
from processgpt.domain.process.state import IncidentKind, InstanceState


@dataclass(frozen=True)
class CreateTask:
    """Create the work item (``todolist`` row) for one activation of a TASK node."""

    node_id: str
    activation: int
    name: str
    activity: Activity
    assignee: str | None
    """From the role bindings given at start, else the role's default."""
    input: Mapping[str, Any]
    """The values of the activity's ``input_data`` (all variables when it names none)."""
    due_at: datetime | None
    """The SLA (``duration_days`` after creation), None without one."""


@dataclass(frozen=True)
class CancelTask:
    node_id: str
    activation: int
    reason: str


@dataclass(frozen=True)
class CreateTimer:
    key: str
    node_id: str
    activation: int
    due_at: datetime
    boundary_id: str | None = None
    """Set for a boundary timer (on ``node_id``); None for an intermediate timer."""
    interrupting: bool = False


@dataclass(frozen=True)
class CancelTimer:
    key: str


@dataclass(frozen=True)
class StartChild:
    """Start a child instance linked to this one; answer with ChildCompleted/ChildFailed."""

    node_id: str
    activation: int
    called: str | None
    """CALL nodes: the definition id to run."""
    subprocess: ProcessGraph | None
    """SUBPROCESS nodes: the embedded graph to run."""
    variables: Mapping[str, Any]


@dataclass(frozen=True)
class CancelChild:
    node_id: str
    activation: int
    reason: str


@dataclass(frozen=True)
class OpenIncident:
    id: str
    kind: IncidentKind
    node_id: str
    activation: int
    reason: str


@dataclass(frozen=True)
class InstanceCompleted:
    variables: Mapping[str, Any]


@dataclass(frozen=True)
class InstanceCancelled:
    reason: str


Decision = (
    CreateTask
    | CancelTask
    | CreateTimer
    | CancelTimer
    | StartChild
    | CancelChild
    | OpenIncident
    | InstanceCompleted
    | InstanceCancelled
)


class HistoryKind(enum.StrEnum):
    INSTANCE_STARTED = "instance_started"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    STEP_CANCELLED = "step_cancelled"
    VARIABLES_SET = "variables_set"
    GATEWAY_DECISION = "gateway_decision"
    JOIN_FIRED = "join_fired"
    TIMER_SET = "timer_set"
    TIMER_FIRED = "timer_fired"
    TIMER_CANCELLED = "timer_cancelled"
    MESSAGE_RECEIVED = "message_received"
    SIGNAL_RECEIVED = "signal_received"
    CHILD_STARTED = "child_started"
    CHILD_COMPLETED = "child_completed"
    CHILD_FAILED = "child_failed"
    INCIDENT = "incident"
    INCIDENT_RESOLVED = "incident_resolved"
    END_REACHED = "end_reached"
    INSTANCE_COMPLETED = "instance_completed"
    INSTANCE_CANCELLED = "instance_cancelled"
    MIGRATED = "migrated"


@dataclass(frozen=True)
class HistoryEntry:
    """One line of an instance's history. ``data`` is JSON (what the entry means is in its
    kind's docs in the engine; e.g. a gateway decision lists every flow evaluated, its
    condition, result and, for text conditions, the verdict's reasoning, and the flows
    taken with why: ``condition``, ``default``, ``unconditional``, ``verdict``)."""

    kind: HistoryKind
    at: datetime
    node_id: str | None = None
    activation: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return history_json((self,))[0]


def history_json(entries: Iterable[HistoryEntry]) -> list[dict[str, Any]]:
    """``[e.to_json() for e in entries]``, each distinct time formatted once (the entries of
    one step share the step's time)."""
    out: list[dict[str, Any]] = []
    last: datetime | None = None
    at = ""
    for e in entries:
        if e.at is not last:
            last, at = e.at, e.at.isoformat()
        out.append(
            {
                "kind": e.kind.value,
                "at": at,
                "node_id": e.node_id,
                "activation": e.activation,
                "data": dict(e.data),
            }
        )
    return out


@dataclass(frozen=True)
class Step:
    state: InstanceState
    decisions: tuple[Decision, ...] = ()
    history: tuple[HistoryEntry, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The ``llm`` agent's judgement of one text condition. ``error`` set: the condition
    could not be judged (the judge task failed or answered nonsense); the gateway then
    opens a condition incident, and resolving it asks the judge again."""

    holds: bool
    reasoning: str = ""
    error: str | None = None


@dataclass(frozen=True)
class Question:
    """One text condition to judge: does ``text`` hold for the variables?"""

    flow_id: str
    gateway_id: str
    text: str
    target_id: str


@dataclass(frozen=True)
class NeedsVerdicts:
    """Returned instead of a :class:`Step` (see the module's docstring): nothing changed."""

    questions: tuple[Question, ...]
    variables: Mapping[str, Any]

"""What can happen to a process instance: the events :func:`.engine.advance` takes, and the
errors it raises when an event does not apply (nothing changes then).

Events name the work they answer by ``(node id, activation)`` (tasks and child instances), by
timer key, or by message/signal name, exactly as the engine's decisions created it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from processgpt.domain.errors import InvalidInput, InvalidTransition, ProcessGPTError
from processgpt.domain.process.model import ProcessGraph


@dataclass(frozen=True)
class TaskCompleted:
    """A task's result: ``output`` is mapped into the variables (see :mod:`.outputs`)."""

    node_id: str
    activation: int
    output: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskFailed:
    """A task exhausted its attempts: the instance gets an incident at that step."""

    node_id: str
    activation: int
    error: str = ""


@dataclass(frozen=True)
class TimerFired:
    key: str


@dataclass(frozen=True)
class MessageReceived:
    """Goes to the oldest token waiting at a message catch event of that name; ``payload``
    is merged into the variables (key by key)."""

    name: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SignalReceived:
    """Goes to every token waiting at a signal catch event of that name (none is fine);
    ``payload`` is merged into the variables (key by key)."""

    name: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChildCompleted:
    """A child instance (call activity, sub-process) completed; ``output`` (its variables)
    is merged into the parent's variables."""

    node_id: str
    activation: int
    output: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChildFailed:
    node_id: str
    activation: int
    error: str = ""


@dataclass(frozen=True)
class Cancel:
    reason: str = ""


@dataclass(frozen=True)
class ResolveIncident:
    """Retry where the incident stopped: a failed task or child runs again as a new
    activation; a split re-evaluates its conditions. ``variables`` are merged into the
    variables first (key by key), to fix what made a condition fail."""

    incident_id: str
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Migrate:
    """Move the instance to ``target`` (another version). ``mapping`` renames node ids (old ->
    new); a node missing from it keeps its id. Tokens whose node keeps its id and kind keep
    their open work; a token that moves has its open work cancelled and arrives anew."""

    target: ProcessGraph
    mapping: Mapping[str, str] = field(default_factory=dict)


Event = (
    TaskCompleted
    | TaskFailed
    | TimerFired
    | MessageReceived
    | SignalReceived
    | ChildCompleted
    | ChildFailed
    | Cancel
    | ResolveIncident
    | Migrate
)


class EventRejected(ProcessGPTError):
    """The event does not apply to the instance as it is: a completion for a task that is
    not open (already completed, cancelled, another activation), a timer that is not armed, a
    message no token waits for, an unknown incident, or any event after the instance
    finished. Nothing changed; a duplicate delivery can be dropped on this error."""

    code = InvalidTransition.code

    def __init__(self, message: str) -> None:
        super().__init__(message)


class MigrationRejected(InvalidInput):
    """A migration that cannot be applied; ``problems`` lists every reason. Nothing changed."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("migration refused: " + "; ".join(problems), field="mapping")
        self.problems = list(problems)


class StartRejected(InvalidInput):
    """The graph cannot start as asked (no start node, or an ambiguous one)."""

"""Engine events as JSON, and the judge protocol for text conditions. Pure: no I/O.

A judge task (a ``todolist`` row with ``step_event`` set) carries the engine event that
waits for verdicts, and the verdicts known so far::

    {"event": {"type": "task_completed", "node_id": "review", "activation": 1,
               "output": {...}},
     "verdicts": {"f_ok": {"holds": true, "reasoning": "..."}},
     "flow_ids": ["f_next"]}

When the judge task ends DONE, its output (see :func:`parse_verdicts`) adds the new verdicts
and the execution layer runs the step again with the stored event. A :class:`Migrate` event
is stored by its target version (``to_version``): graphs are not copied into tasks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from processgpt.domain.process.events import (
    Cancel,
    ChildCompleted,
    ChildFailed,
    Event,
    MessageReceived,
    ResolveIncident,
    SignalReceived,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)
from processgpt.domain.process.step import Question, Verdict


@dataclass(frozen=True)
class StartInstance:
    """The start of an instance, as an event waiting for verdicts (the variables and role
    bindings are the instance's, stored with it)."""

    start_node: str | None = None


@dataclass(frozen=True)
class MigrateTo:
    """A migration waiting for verdicts: the target version of the same definition."""

    to_version: int
    mapping: Mapping[str, str] = field(default_factory=dict)


StoredEvent = Event | StartInstance | MigrateTo
"""What a judge task may carry (a :class:`~.events.Migrate` becomes a :class:`MigrateTo`)."""


class BadVerdicts(ValueError):
    """A judge's output that does not answer every question with a verdict."""


def event_to_json(event: StoredEvent) -> dict[str, Any]:  # noqa: PLR0911 - one per kind
    if isinstance(event, StartInstance):
        return {"type": "start", "start_node": event.start_node}
    if isinstance(event, MigrateTo):
        return {"type": "migrate", "to_version": event.to_version, "mapping": dict(event.mapping)}
    if isinstance(event, TaskCompleted | ChildCompleted):
        kind = "task_completed" if isinstance(event, TaskCompleted) else "child_completed"
        return {
            "type": kind,
            "node_id": event.node_id,
            "activation": event.activation,
            "output": dict(event.output),
        }
    if isinstance(event, TaskFailed | ChildFailed):
        kind = "task_failed" if isinstance(event, TaskFailed) else "child_failed"
        return {
            "type": kind,
            "node_id": event.node_id,
            "activation": event.activation,
            "error": event.error,
        }
    if isinstance(event, TimerFired):
        return {"type": "timer_fired", "key": event.key}
    if isinstance(event, MessageReceived | SignalReceived):
        kind = "message" if isinstance(event, MessageReceived) else "signal"
        return {"type": kind, "name": event.name, "payload": dict(event.payload)}
    if isinstance(event, ResolveIncident):
        return {
            "type": "resolve_incident",
            "incident_id": event.incident_id,
            "variables": dict(event.variables),
        }
    if isinstance(event, Cancel):
        return {"type": "cancel", "reason": event.reason}
    raise TypeError(f"{type(event).__name__} is not stored with a judge task")


def event_from_json(data: Mapping[str, Any]) -> StoredEvent:  # noqa: PLR0911 - one per kind
    """The event :func:`event_to_json` stored; ``ValueError`` for anything else."""
    kind = data.get("type")
    if kind == "start":
        return StartInstance(data.get("start_node"))
    if kind == "migrate":
        return MigrateTo(int(data["to_version"]), dict(data.get("mapping") or {}))
    if kind == "task_completed":
        return TaskCompleted(data["node_id"], int(data["activation"]), dict(data["output"]))
    if kind == "child_completed":
        return ChildCompleted(data["node_id"], int(data["activation"]), dict(data["output"]))
    if kind == "task_failed":
        return TaskFailed(data["node_id"], int(data["activation"]), str(data.get("error", "")))
    if kind == "child_failed":
        return ChildFailed(data["node_id"], int(data["activation"]), str(data.get("error", "")))
    if kind == "timer_fired":
        return TimerFired(str(data["key"]))
    if kind == "message":
        return MessageReceived(str(data["name"]), dict(data.get("payload") or {}))
    if kind == "signal":
        return SignalReceived(str(data["name"]), dict(data.get("payload") or {}))
    if kind == "resolve_incident":
        return ResolveIncident(str(data["incident_id"]), dict(data.get("variables") or {}))
    if kind == "cancel":
        return Cancel(str(data.get("reason", "")))
    raise ValueError(f"unknown stored event type {kind!r}")


def verdicts_to_json(verdicts: Mapping[str, Verdict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in verdicts.items():
        out[k] = {"holds": v.holds, "reasoning": v.reasoning}
        if v.error is not None:
            out[k]["error"] = v.error
    return out


def verdicts_from_json(data: Mapping[str, Any]) -> dict[str, Verdict]:
    return {
        str(k): Verdict(
            bool(v["holds"]),
            str(v.get("reasoning", "")),
            None if v.get("error") is None else str(v["error"]),
        )
        for k, v in data.items()
    }


def judge_query(questions: tuple[Question, ...]) -> str:
    """What the judge agent is asked (its input carries the questions and the variables)."""
    lines = [
        "Judge each condition below on the process variables given in the task's input.",
        "Answer with JSON only, exactly of this shape:",
        '{"verdicts": {"<flow id>": {"holds": true or false, "reasoning": "<one sentence>"}}}',
        "with one entry for each flow id.",
        "",
    ]
    for q in questions:
        lines.append(f"- flow id {q.flow_id!r}: {q.text}")
    return "\n".join(lines)


def judge_input(questions: tuple[Question, ...], variables: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "questions": [
            {"flow_id": q.flow_id, "gateway_id": q.gateway_id, "condition": q.text}
            for q in questions
        ],
        "variables": dict(variables),
    }


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_verdicts(output: Any, flow_ids: list[str]) -> dict[str, Verdict]:
    """The verdicts in a judge's output, one per flow id asked: the output is the JSON object
    ``{"verdicts": {...}}`` itself, or holds it as text (anywhere in a string, a code fence
    included, or under a string value such as ``text`` or ``result``). ``holds`` must be a
    boolean (or the text ``true``/``false``). Anything else raises :class:`BadVerdicts`."""
    found = _find_verdicts(output, depth=0)
    if found is None:
        raise BadVerdicts('the judge\'s output holds no {"verdicts": {...}} object')
    verdicts: dict[str, Verdict] = {}
    missing = []
    for flow_id in flow_ids:
        entry = found.get(flow_id)
        if isinstance(entry, bool):
            entry = {"holds": entry}
        holds = entry.get("holds") if isinstance(entry, Mapping) else None
        if isinstance(holds, str) and holds.strip().lower() in ("true", "false"):
            holds = holds.strip().lower() == "true"
        if not isinstance(holds, bool):
            missing.append(flow_id)
            continue
        reasoning = entry.get("reasoning", "") if isinstance(entry, Mapping) else ""
        verdicts[flow_id] = Verdict(holds, str(reasoning)[:2000])
    if missing:
        raise BadVerdicts(f"the judge gave no boolean verdict for {', '.join(missing)}")
    return verdicts


def _find_verdicts(value: Any, depth: int) -> Mapping[str, Any] | None:  # noqa: PLR0911 - one per kind
    if depth > 4:
        return None
    if isinstance(value, Mapping):
        inner = value.get("verdicts")
        if isinstance(inner, Mapping):
            return inner
        for item in value.values():
            found = _find_verdicts(item, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        for item in value:
            found = _find_verdicts(item, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, str):
        match = _JSON_OBJECT.search(value)
        if match is None:
            return None
        try:
            decoded = json.loads(match.group(0))
        except ValueError:
            return None
        return _find_verdicts(decoded, depth + 1)
    return None

"""One element of a ProcessGPT definition (an activity, an event, a sequence) → its part of
the model, with the document's quirks: ``properties`` as JSON text, types in any case,
``formHandler:defaultform`` as no form. :mod:`.processgpt_json` reads the document's
structure and uses this for each element; every problem found is recorded, none raised."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from processgpt.domain.errors import DefinitionProblem
from processgpt.domain.process.model import (
    Activity,
    AgentMode,
    BoundaryTimer,
    Flow,
    Node,
    NodeKind,
    TaskType,
    TimerSpec,
)

TASK_TYPES = {
    "usertask": TaskType.USER,
    "useractivity": TaskType.USER,
    "task": TaskType.USER,
    "servicetask": TaskType.SERVICE,
    "scripttask": TaskType.SCRIPT,
    "manualtask": TaskType.MANUAL,
    "manualactivity": TaskType.MANUAL,
}
GATEWAY_TYPES = {
    "exclusivegateway": NodeKind.EXCLUSIVE,
    "parallelgateway": NodeKind.PARALLEL,
    "inclusivegateway": NodeKind.INCLUSIVE,
}
EVENT_TYPES = ("startevent", "endevent", "intermediatecatchevent", "boundaryevent")
CALL_TYPES = ("callactivity",)
SUBPROCESS_TYPES = ("subprocess",)
_DEFAULT_FLAGS = ("default", "isDefault", "defaultFlow", "default_flow")
PLACEHOLDER_FORM = "defaultform"
VARIABLE_TYPES = {
    "text": "string",
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "date": "date",
    "attachment": "attachment",
    "form": "object",
    "object": "object",
    "array": "array",
}
PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCOPED = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*:[^?]*$", re.DOTALL)


def clean_text(value: Any) -> str:
    """``value`` stripped when it is text, else empty."""
    return value.strip() if isinstance(value, str) else ""


def type_key(value: Any) -> str:
    """An element type as compared: lower case, without a ``bpmn:`` prefix."""
    return clean_text(value).lower().removeprefix("bpmn:")


class ElementReader:
    """Reads single elements; ``problems`` collects what is wrong with them."""

    def __init__(self, problems: list[DefinitionProblem]) -> None:
        self.problems = problems

    def problem(self, element_id: str | None, text: str) -> None:
        self.problems.append(DefinitionProblem(element_id, text))

    def event(self, item: dict[str, Any], kind: str, props: dict[str, Any]) -> Node | None:
        node_id, name = item["id"], clean_text(item.get("name"))
        definition = _event_definition(item, props)
        if kind == "startevent":
            if definition is None:
                return Node(node_id, NodeKind.START, name)
            if definition == "timer":
                timer = self._timer(node_id, props, start=True)
                return Node(node_id, NodeKind.START, name, timer=timer) if timer else None
        elif kind == "endevent" and definition is None:
            return Node(node_id, NodeKind.END, name)
        elif kind == "intermediatecatchevent":
            if definition == "timer":
                timer = self._timer(node_id, props, start=False)
                return Node(node_id, NodeKind.TIMER, name, timer=timer) if timer else None
            if definition in ("message", "signal"):
                event_name = (
                    clean_text(props.get(f"{definition}Name"))
                    or clean_text(props.get(definition))
                    or name
                    or node_id
                )
                kind_of = NodeKind.MESSAGE if definition == "message" else NodeKind.SIGNAL
                return Node(node_id, kind_of, name, event_name=event_name)
        what = f"{item.get('type')}" + (f" with a {definition} definition" if definition else "")
        self.problem(node_id, f"unsupported event: {what}")
        return None

    def boundary(self, item: dict[str, Any]) -> BoundaryTimer | None:
        props = self.properties(item)
        definition = _event_definition(item, props)
        if definition != "timer":
            self.problem(
                item["id"], f"unsupported boundary event ({definition or 'no'} definition)"
            )
            return None
        timer = self._timer(item["id"], props, start=False)
        if timer is None:
            return None
        cancel = item.get("cancelActivity", props.get("cancelActivity", True))
        interrupting = not (cancel is False or (isinstance(cancel, str) and cancel == "false"))
        return BoundaryTimer(item["id"], timer, interrupting, clean_text(item.get("name")))

    def _timer(self, node_id: str, props: Mapping[str, Any], *, start: bool) -> TimerSpec | None:
        duration = clean_text(props.get("timeDuration")) or clean_text(props.get("duration"))
        date = clean_text(props.get("timeDate")) or clean_text(props.get("date"))
        cycle = clean_text(props.get("timeCycle")) or clean_text(props.get("cycle"))
        cron = clean_text(props.get("expression"))
        if start and not cycle and cron:
            cycle = cron
        given = [x for x in (duration, date, cycle) if x]
        if cycle and not start:
            self.problem(node_id, "a timer cycle (repeating timer) is allowed on start events only")
            return None
        if cron and not start and not given:
            self.problem(
                node_id,
                "cron timers are allowed on start events only; give timeDuration or timeDate",
            )
            return None
        if len(given) != 1:
            self.problem(
                node_id, "a timer needs exactly one of timeDuration, timeDate or timeCycle"
            )
            return None
        return TimerSpec(duration=duration or None, date=date or None, cycle=cycle or None)

    def activity(self, item: dict[str, Any], kind: str, props: Mapping[str, Any]) -> Activity:
        node_id = item["id"]

        def pick(key: str) -> Any:
            value = item.get(key)
            return props.get(key) if value in (None, "", []) else value

        tool = clean_text(pick("tool")) or None
        form_id = None
        if tool is not None and tool.startswith("formHandler:"):
            form_id = tool.removeprefix("formHandler:").strip() or None
            if form_id == PLACEHOLDER_FORM:
                form_id = None
        mode_text = type_key(pick("agentMode")) or "none"
        try:
            mode = AgentMode(mode_text)
        except ValueError:
            self.problem(node_id, f"agentMode {mode_text!r} is not none, draft or complete")
            mode = AgentMode.NONE
        orchestration = clean_text(pick("orchestration")) or None
        if orchestration == "none":
            orchestration = None
        duration = pick("duration")
        days: float | None = None
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            days = float(duration)
        elif isinstance(duration, str) and duration.strip():
            try:
                days = float(duration)
            except ValueError:
                self.problem(node_id, f"duration {duration!r} is not a number of days")
        elif duration not in (None, ""):
            self.problem(node_id, "duration must be a number of days")
        if days is not None and not 0 <= days <= 3650:
            self.problem(node_id, "duration must be between 0 and 3650 days")
            days = None
        instruction = clean_text(pick("instruction")) or clean_text(pick("description"))
        return Activity(
            task_type=TASK_TYPES[kind],
            role=_role_name(pick("role")),
            tool=tool,
            form_id=form_id,
            instruction=instruction,
            input_data=self._names(node_id, "inputData", pick("inputData")),
            output_data=self._names(node_id, "outputData", pick("outputData")),
            duration_days=days,
            agent=clean_text(pick("agent")) or None,
            agent_mode=mode,
            orchestration=orchestration,
        )

    def _names(self, node_id: str, key: str, value: Any) -> tuple[str, ...]:
        if value in (None, ""):
            return ()
        if not isinstance(value, list):
            self.problem(node_id, f"{key} must be a list")
            return ()
        names: list[str] = []
        for raw in value:
            entry = raw.get("name") or raw.get("key") if isinstance(raw, Mapping) else raw
            if isinstance(entry, str) and entry.strip():
                names.append(entry.strip())
            else:
                self.problem(node_id, f"{key} entries must be names")
        return tuple(dict.fromkeys(names))

    def flow(self, seq: dict[str, Any]) -> tuple[Flow, bool]:
        """The flow, and whether it is flagged as its gateway's default."""
        flow_id = seq["id"]
        props = self.properties(seq)
        source, target = seq.get("source"), seq.get("target")
        if not isinstance(source, str) or not isinstance(target, str):
            self.problem(flow_id, "a sequence needs a source and a target id")
        mode = type_key(props.get("conditionMode"))
        function = clean_text(props.get("conditionFunction"))
        condition_text = clean_text(props.get("condition"))
        raw = seq.get("condition")
        if isinstance(raw, str):
            condition_text = condition_text or raw.strip()
        elif isinstance(raw, Mapping) and raw:
            self.problem(flow_id, "structured conditions are not supported; use CEL or text")
        condition: str | None = None
        condition_mode = "expression"
        if function:
            if _SCOPED.match(function):
                self.problem(
                    flow_id,
                    "a scoped conditionFunction ('<form>: <expression>') is not supported; "
                    "write <form>.<field> in the expression",
                )
            condition = function
        elif mode in ("expression", "cel") and condition_text:
            condition = condition_text
        elif condition_text:
            condition, condition_mode = condition_text, "text"
        priority = props.get("priority", 0)
        try:
            priority = int(priority)
        except (TypeError, ValueError):
            self.problem(flow_id, f"priority {priority!r} is not a whole number")
            priority = 0
        flow = Flow(
            id=flow_id,
            source=source if isinstance(source, str) else "",
            target=target if isinstance(target, str) else "",
            condition=condition,
            condition_mode=condition_mode,
            priority=priority,
            name=clean_text(seq.get("name")),
        )
        return flow, any(props.get(k) is True for k in _DEFAULT_FLAGS)

    def properties(self, item: Mapping[str, Any], *, report: bool = True) -> dict[str, Any]:
        raw = item.get("properties")
        if raw in (None, ""):
            props: dict[str, Any] = {}
        elif isinstance(raw, Mapping):
            props = dict(raw)
        elif isinstance(raw, str):
            try:
                parsed = json.loads(raw)
            except ValueError:
                if report:
                    self.problem(item.get("id"), "properties is not valid JSON")
                parsed = {}
            if not isinstance(parsed, dict):
                if report:
                    self.problem(item.get("id"), "properties must be a JSON object")
                parsed = {}
            props = parsed
        else:
            if report:
                self.problem(item.get("id"), "properties must be a JSON object or its text")
            props = {}
        return props


def _event_definition(item: Mapping[str, Any], props: Mapping[str, Any]) -> str | None:
    """``timer``, ``message``, ``signal``, another definition's name, or None (a plain
    event)."""
    for raw in (item.get("definitionType"), item.get("eventType"), props.get("eventType")):
        text = type_key(raw)
        if text:
            return text.removesuffix("eventdefinition") or None
    if any(k in props for k in ("timeDuration", "timeDate", "timeCycle")):
        return "timer"
    return None


def _role_name(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("name")
    return clean_text(value) or None

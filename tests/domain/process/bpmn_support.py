"""Test-only BPMN support: a small BPMN 2.0 reader (-> ProcessGraph) and writer
(ProcessGraph -> XML), and drivers that run one definition through our engine and through
SpiffWorkflow 3.x (the oracle) with the same completion choices.

The reader is NOT the product's parser (the definitions branch writes that one, hardened);
it reads only what the conformance files use. Conditions are written in the subset where
Python (Spiff evaluates them with ``eval``) and CEL agree: comparisons of numbers and strings,
``and``/``or``/``not`` (rewritten to ``&&``/``||``/``!`` for CEL).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from processgpt.domain.process.engine import advance, start
from processgpt.domain.process.events import TaskCompleted, TimerFired
from processgpt.domain.process.model import (
    Activity,
    BoundaryTimer,
    Flow,
    Node,
    NodeKind,
    ProcessGraph,
    TaskType,
    TimerSpec,
    Variable,
)
from processgpt.domain.process.state import InstanceState, InstanceStatus, Wait
from processgpt.domain.process.step import Step
from tests.domain.process.builders import T0

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_NS = {"bpmn": BPMN}
_TASKS = {
    "task": TaskType.USER,
    "userTask": TaskType.USER,
    "manualTask": TaskType.MANUAL,
    "serviceTask": TaskType.SERVICE,
    "scriptTask": TaskType.SCRIPT,
}
_GATEWAYS = {
    "exclusiveGateway": NodeKind.EXCLUSIVE,
    "parallelGateway": NodeKind.PARALLEL,
    "inclusiveGateway": NodeKind.INCLUSIVE,
}
_IDENT = re.compile(r"\b[A-Za-z_]\w*\b")
_KEYWORDS = {"and", "or", "not", "True", "False", "true", "false", "in", "null", "None"}


def python_to_cel(expression: str) -> str:
    text = re.sub(r"\band\b", "&&", expression)
    text = re.sub(r"\bor\b", "||", text)
    text = re.sub(r"\bnot\s+", "!", text)
    text = re.sub(r"\bTrue\b", "true", text)
    return re.sub(r"\bFalse\b", "false", text)


def _identifiers(expression: str) -> set[str]:
    without_strings = re.sub(r"'[^']*'|\"[^\"]*\"", "", expression)
    return {m for m in _IDENT.findall(without_strings) if m not in _KEYWORDS}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_bpmn(xml: str | bytes, process_id: str | None = None) -> ProcessGraph:
    """The process ``process_id`` (default: the first) of a BPMN document, as a graph."""
    root = ET.fromstring(xml)  # test-authored files only
    processes = root.findall("bpmn:process", _NS)
    process = next(p for p in processes if process_id in (None, p.get("id")))
    return _read_process(process)


def _read_process(process: ET.Element) -> ProcessGraph:
    nodes: list[Node] = []
    flows: list[Flow] = []
    boundaries: dict[str, list[BoundaryTimer]] = {}
    names: set[str] = set()
    for element in process:
        tag, eid = _local(element.tag), element.get("id", "")
        name = element.get("name", "")
        if tag == "sequenceFlow":
            cond_el = element.find("bpmn:conditionExpression", _NS)
            condition = None
            if cond_el is not None and (cond_el.text or "").strip():
                condition = python_to_cel(cond_el.text.strip())  # type: ignore[union-attr]
                names |= _identifiers(condition)
            flows.append(
                Flow(eid, element.get("sourceRef", ""), element.get("targetRef", ""), condition)
            )
        elif tag in _TASKS:
            nodes.append(Node(eid, NodeKind.TASK, name, activity=Activity(task_type=_TASKS[tag])))
        elif tag == "startEvent":
            nodes.append(Node(eid, NodeKind.START, name))
        elif tag == "endEvent":
            nodes.append(Node(eid, NodeKind.END, name))
        elif tag in _GATEWAYS:
            nodes.append(Node(eid, _GATEWAYS[tag], name, default_flow=element.get("default")))
        elif tag == "intermediateCatchEvent":
            nodes.append(_catch_event(element, eid, name))
        elif tag == "boundaryEvent":
            spec = _timer(element)
            boundaries.setdefault(element.get("attachedToRef", ""), []).append(
                BoundaryTimer(eid, spec, element.get("cancelActivity", "true") == "true", name)
            )
        elif tag == "callActivity":
            nodes.append(Node(eid, NodeKind.CALL, name, called=element.get("calledElement")))
        elif tag == "subProcess":
            nodes.append(Node(eid, NodeKind.SUBPROCESS, name, subprocess=_read_process(element)))
        else:
            raise ValueError(f"unsupported BPMN element {tag} {eid}")
    nodes = [Node(**{**n.__dict__, "boundary": tuple(boundaries.get(n.id, ()))}) for n in nodes]
    return ProcessGraph(
        id=process.get("id", ""),
        name=process.get("name", ""),
        nodes=tuple(nodes),
        flows=tuple(flows),
        variables=tuple(Variable(n) for n in sorted(names)),
    )


def _timer(element: ET.Element) -> TimerSpec:
    definition = element.find("bpmn:timerEventDefinition", _NS)
    if definition is None:
        raise ValueError(f"only timer boundary events are supported: {element.get('id')}")
    duration = definition.find("bpmn:timeDuration", _NS)
    date = definition.find("bpmn:timeDate", _NS)
    # Spiff reads these as Python expressions: strip the quotes around a literal.
    if duration is not None:
        return TimerSpec(duration=(duration.text or "").strip().strip("\"'"))
    return TimerSpec(date=(date.text or "").strip().strip("\"'") if date is not None else None)


def _catch_event(element: ET.Element, eid: str, name: str) -> Node:
    if element.find("bpmn:timerEventDefinition", _NS) is not None:
        return Node(eid, NodeKind.TIMER, name, timer=_timer(element))
    message = element.find("bpmn:messageEventDefinition", _NS)
    if message is not None:
        return Node(eid, NodeKind.MESSAGE, name, event_name=message.get("messageRef"))
    signal = element.find("bpmn:signalEventDefinition", _NS)
    if signal is not None:
        return Node(eid, NodeKind.SIGNAL, name, event_name=signal.get("signalRef"))
    raise ValueError(f"unsupported catch event {eid}")


def write_bpmn(graph: ProcessGraph) -> str:
    """A BPMN document Spiff can run: TASK nodes as userTasks, gateways, start/end events;
    CEL conditions written as Python (the generator only uses the shared subset)."""
    tags = {
        NodeKind.START: "startEvent",
        NodeKind.END: "endEvent",
        NodeKind.TASK: "userTask",
        NodeKind.EXCLUSIVE: "exclusiveGateway",
        NodeKind.PARALLEL: "parallelGateway",
        NodeKind.INCLUSIVE: "inclusiveGateway",
    }
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<bpmn:definitions xmlns:bpmn="{BPMN}" xmlns:xsi="{XSI}" id="defs" '
        'targetNamespace="http://bpmn.io/schema/bpmn">',
        f'<bpmn:process id="{graph.id}" isExecutable="true">',
    ]
    for node in graph.nodes:
        default = f' default="{node.default_flow}"' if node.default_flow else ""
        lines.append(f'  <bpmn:{tags[node.kind]} id="{node.id}" name="{node.id}"{default}/>')
    for f in graph.flows:
        head = f'  <bpmn:sequenceFlow id="{f.id}" sourceRef="{f.source}" targetRef="{f.target}"'
        if f.condition is None:
            lines.append(head + "/>")
            continue
        python = f.condition.replace("&&", " and ").replace("||", " or ")
        lines.append(
            head + '><bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
            f"{escape(python)}</bpmn:conditionExpression></bpmn:sequenceFlow>"
        )
    lines += ["</bpmn:process>", "</bpmn:definitions>"]
    return "\n".join(lines)


Outputs = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
"""(task id, the variables the task sees) -> its output."""


@dataclass
class Trace:
    """What a run did: the ready set before each completion, the completions, the end."""

    ready: list[list[str]] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    completed: bool = False
    error: str | None = None


def _pick(ready: list[str], choices: Sequence[int], step: int) -> str:
    return ready[choices[step % len(choices)] % len(ready)] if choices else ready[0]


def run_ours(
    graph: ProcessGraph,
    variables: Mapping[str, Any],
    outputs: Outputs,
    choices: Sequence[int] = (),
    *,
    max_steps: int = 200,
    fire_timers: bool = True,
) -> Trace:
    trace = Trace()
    result = start(graph, variables, now=T0)
    assert isinstance(result, Step)
    state: InstanceState = result.state
    now = T0
    for step in range(max_steps):
        if state.status is InstanceStatus.INCIDENT:
            trace.error = next(iter(state.incidents.values())).reason
            break
        ready = sorted(f"{t.node_id}" for t in state.tokens if t.wait is Wait.TASK)
        if not ready:
            if fire_timers and state.timers:
                now += timedelta(days=400)
                key = min(state.timers.values(), key=lambda t: (t.due_at, t.key)).key
                stepped = advance(graph, state, TimerFired(key), now=now)
                assert isinstance(stepped, Step)
                state = stepped.state
                continue
            break
        trace.ready.append(ready)
        chosen = _pick(ready, choices, step)
        token = next(t for t in state.tokens if t.wait is Wait.TASK and t.node_id == chosen)
        trace.path.append(chosen)
        output = outputs(chosen, state.variables)
        stepped = advance(graph, state, TaskCompleted(chosen, token.activation, output), now=now)
        assert isinstance(stepped, Step)
        state = stepped.state
    trace.variables = dict(state.variables)
    trace.completed = state.status is InstanceStatus.COMPLETED
    return trace


def run_spiff(
    xml: str,
    process_id: str,
    variables: Mapping[str, Any],
    outputs: Outputs,
    choices: Sequence[int] = (),
    *,
    max_steps: int = 200,
) -> Trace:
    trace = Trace()
    parser = BpmnParser()
    parser.add_bpmn_str(xml.encode())
    workflow = BpmnWorkflow(parser.get_spec(process_id))
    start_task = workflow.get_tasks(state=TaskState.READY)[0]
    start_task.data.update(variables)
    try:
        workflow.do_engine_steps()
        for step in range(max_steps):
            tasks = workflow.get_tasks(state=TaskState.READY, manual=True)
            if not tasks:
                break
            by_id = {t.task_spec.bpmn_id: t for t in tasks}
            ready = sorted(by_id)
            trace.ready.append(ready)
            chosen = _pick(ready, choices, step)
            task = by_id[chosen]
            trace.path.append(chosen)
            task.data.update(outputs(chosen, task.data))
            task.run()
            workflow.do_engine_steps()
    except Exception as exc:  # Spiff raises its WorkflowException family
        trace.error = str(exc)
    trace.completed = workflow.is_completed()
    trace.variables = dict(workflow.data)
    return trace


CONFORMANCE = Path(__file__).parent / "bpmn"

"""Test-only BPMN support: drivers that run one definition through our engine and through
SpiffWorkflow 3.x (the oracle) with the same completion choices, a writer (ProcessGraph ->
XML) for generated graphs, and the dialect bridge for the oracle.

The conformance files are written for the product: they are read by its parser
(:func:`read_conformance`, as ``processgpt process deploy`` publishes them), their conditions
are CEL and their variables are declared as data objects. Spiff evaluates conditions with
Python ``eval``, so it gets a copy whose conditions are rewritten (:func:`spiff_dialect`);
the files only use the subset where the two agree: comparisons of numbers and strings,
``&&``/``||``/``!`` (``and``/``or``/``not`` in Python).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, unescape

from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from processgpt.domain.process.engine import advance, start
from processgpt.domain.process.events import TaskCompleted, TimerFired
from processgpt.domain.process.model import NodeKind, ProcessGraph
from processgpt.domain.process.publish import compile_definition
from processgpt.domain.process.state import InstanceState, InstanceStatus, Wait
from processgpt.domain.process.step import Step
from tests.domain.process.builders import T0

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CONFORMANCE = Path(__file__).parent / "bpmn"
_DATA_OBJECT = re.compile(r"[ \t]*<bpmn:dataObject\b[^>]*/>\n?")
_CONDITION = re.compile(
    r"(<bpmn:conditionExpression\b[^>]*>)(.*?)(</bpmn:conditionExpression>)", re.DOTALL
)


def cel_to_python(expression: str) -> str:
    """A condition of the shared subset (comparisons of numbers and strings, ``&&``, ``||``,
    ``!``) as Python, the way Spiff evaluates it."""
    text = expression.replace("&&", " and ").replace("||", " or ")
    return re.sub(r"!(?!=)\s*", "not ", text)


def spiff_dialect(xml: str) -> str:
    """The same BPMN document for the oracle: CEL conditions written as Python, and without
    its data object declarations (the product needs them to check conditions at publish;
    Spiff would add a ``data_objects`` entry to the variables). Nothing else changes."""

    def rewrite(match: re.Match[str]) -> str:
        body = unescape(match.group(2))
        return match.group(1) + escape(cel_to_python(body)) + match.group(3)

    return _CONDITION.sub(rewrite, _DATA_OBJECT.sub("", xml))


def read_conformance(name: str) -> tuple[str, ProcessGraph]:
    """A conformance file's XML and its graph as the product reads it when the file is
    published (:func:`~processgpt.domain.process.publish.compile_definition`: the BPMN
    parser plus validation)."""
    xml = (CONFORMANCE / f"{name}.bpmn").read_text()
    return xml, compile_definition(name, xml).graph


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
        python = cel_to_python(f.condition)
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


def pick(ready: list[str], choices: Sequence[int], step: int) -> str:
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
        chosen = pick(ready, choices, step)
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
    parser.add_bpmn_str(spiff_dialect(xml).encode())
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
            chosen = pick(ready, choices, step)
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


COUNTERS = {"review": "reviews", "count": "rounds"}


# -- the conformance cases: shared by the domain test and the API test --------------------


def outputs(task: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """Each task records how often it ran; a few also count rounds for the loops."""
    out = {f"{task}_done": int(variables.get(f"{task}_done", 0)) + 1}
    counter = COUNTERS.get(task)
    if counter is not None:
        out[counter] = int(variables.get(counter, 0)) + 1
    return out


ORACLE_CASES: list[tuple[str, dict[str, Any], tuple[int, ...], list[str]]] = [
    ("sequence", {}, (), ["fill", "review"]),
    ("exclusive", {"amount": 5000, "kind": "x"}, (), ["fill", "cfo"]),
    ("exclusive", {"amount": 500, "kind": "travel"}, (), ["fill", "manager"]),
    ("exclusive", {"amount": 500, "kind": "other"}, (), ["fill", "auto"]),
    ("exclusive_no_match", {"answer": "yes"}, (), ["yes"]),
    ("exclusive_no_match", {"answer": "maybe"}, (), []),
    ("parallel", {}, (), ["finance", "legal", "security", "security_followup", "sign"]),
    ("parallel", {}, (2, 0), ["security", "finance", "legal", "security_followup", "sign"]),
    (
        "inclusive",
        {"nights": 2, "distance": 800},
        (),
        ["flight", "flight_seat", "hotel", "confirm"],
    ),
    ("inclusive", {"nights": 1, "distance": 100}, (1,), ["hotel", "car", "confirm"]),
    ("inclusive", {"nights": 0, "distance": 0}, (), ["nothing", "confirm"]),
    ("inclusive", {"nights": 0, "distance": 900}, (), ["flight", "flight_seat", "confirm"]),
    ("loop", {"reviews": 0}, (), ["draft", "review"] * 3 + ["publish"]),
    ("nested", {"rounds": 1}, (), ["a1", "a2", "b", "count", "b", "count"]),
    ("nested", {"rounds": 1}, (2, 1, 0), ["b", "a2", "a1", "count", "b", "count"]),
]

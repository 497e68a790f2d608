"""BPMN 2.0 XML → the internal model: the conformance samples (which SpiffWorkflow loads too),
agent settings in extension elements, refused elements and hostile XML."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.parser import BpmnParser

from processgpt.domain.errors import ProcessDefinitionInvalid
from processgpt.domain.process.bpmn import MAX_BPMN_BYTES, parse_bpmn
from processgpt.domain.process.model import AgentMode, NodeKind, ProcessGraph, TaskType
from processgpt.domain.process.validate import check

SAMPLES = Path(__file__).resolve().parents[2] / "process" / "bpmn"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "processes"
SAMPLE_FILES = sorted(SAMPLES.glob("*.bpmn"))

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:uengine="http://uengine" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d">'
)


def document(body: str, *, extra: str = "") -> str:
    return f'{HEAD}<bpmn:process id="p" name="P">{body}</bpmn:process>{extra}</bpmn:definitions>'


def chain(*nodes: str) -> str:
    """``start → nodes… → end`` with flows between them (ids from the node elements)."""
    ids = ["start", *[n.split('id="', 1)[1].split('"', 1)[0] for n in nodes], "end"]
    flows = "".join(
        f'<bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}"/>'
        for i, (a, b) in enumerate(itertools.pairwise(ids))
    )
    return '<bpmn:startEvent id="start"/>' + "".join(nodes) + '<bpmn:endEvent id="end"/>' + flows


def test_there_is_a_sample_per_construct() -> None:
    names = {f.stem for f in SAMPLE_FILES}
    assert {
        "start_end",
        "task_types",
        "exclusive_default",
        "parallel",
        "inclusive",
        "loop",
        "timer_intermediate",
        "timer_start",
        "boundary_timer_interrupting",
        "boundary_timer_noninterrupting",
        "message",
        "signal",
        "subprocess",
        "call_activity",
        "lanes",
    } <= names


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_each_sample_loads_here_and_in_spiffworkflow(path: Path) -> None:
    graph = parse_bpmn(path.read_text())
    check(graph)
    assert graph.id == path.stem
    assert ProcessGraph.from_json(json.loads(json.dumps(graph.to_json()))) == graph
    parser = BpmnParser()
    parser.add_bpmn_str(path.read_bytes(), filename=path.name)
    if path.stem == "call_activity":
        child = SAMPLES / "call_activity_child.bpmn"
        parser.add_bpmn_str(child.read_bytes(), filename=child.name)
    spec = parser.get_spec(path.stem)
    parser.get_subprocess_specs(path.stem)
    ours = {n.id for n in graph.nodes} | {b.id for n in graph.nodes for b in n.boundary}
    assert ours <= set(spec.task_specs), sorted(ours - set(spec.task_specs))


def test_what_the_samples_mean() -> None:
    def load(name: str) -> ProcessGraph:
        return parse_bpmn((SAMPLES / f"{name}.bpmn").read_text())

    types = load("task_types")
    assert [n.activity.task_type for n in types.nodes if n.activity] == [  # type: ignore[union-attr]
        TaskType.USER,
        TaskType.SERVICE,
        TaskType.SCRIPT,
        TaskType.MANUAL,
        TaskType.USER,
    ]
    xor = load("exclusive_default")
    assert xor.node("split").default_flow == "f_small"
    assert xor.outgoing("split")[0].condition == "amount > 1000"
    assert [v.name for v in xor.variables] == ["amount"]
    assert load("inclusive").node("split").kind is NodeKind.INCLUSIVE
    (late,) = load("boundary_timer_interrupting").node("approve").boundary
    assert late.interrupting and late.timer.duration == "PT2H"
    (remind,) = load("boundary_timer_noninterrupting").node("approve").boundary
    assert not remind.interrupting
    assert load("timer_intermediate").node("wait").timer.duration == "P1D"  # type: ignore[union-attr]
    assert load("timer_start").starts[0].timer.cycle == "R/2025-01-06T09:00:00Z/P7D"  # type: ignore[union-attr]
    assert load("message").node("wait").event_name == "payment_received"
    assert load("signal").node("wait").kind is NodeKind.SIGNAL
    assert load("signal").node("wait").event_name == "go_live"
    sub = load("subprocess").node("prepare").subprocess
    assert sub is not None and [n.id for n in sub.nodes] == [
        "sub_start",
        "price",
        "write",
        "sub_end",
    ]
    assert load("call_activity").node("check").called == "call_activity_child"
    lanes = load("lanes")
    assert [r.name for r in lanes.roles] == ["requester", "manager"]
    assert lanes.node("approve").activity.role == "manager"  # type: ignore[union-attr]


def test_agent_settings_in_processgpt_and_camunda_extensions() -> None:
    uengine = (
        '<bpmn:userTask id="a" name="Assess"><bpmn:extensionElements><uengine:properties>'
        '<uengine:json>{"agent": "llm", "agentMode": "draft", "tool": "formHandler:f1", '
        '"instruction": "Check it", "inputData": ["x"], "outputData": ["y"], "duration": 2, '
        '"role": {"name": "clerk"}}</uengine:json></uengine:properties></bpmn:extensionElements>'
        "</bpmn:userTask>"
    )
    camunda = (
        '<bpmn:serviceTask id="b" camunda:asyncBefore="true"><bpmn:extensionElements>'
        '<camunda:properties><camunda:property name="agent" value="researcher"/>'
        '<camunda:property name="agentMode" value="complete"/>'
        '<camunda:property name="inputData" value="x, y"/></camunda:properties>'
        "</bpmn:extensionElements></bpmn:serviceTask>"
    )
    zeebe = (
        '<bpmn:userTask id="c" camunda:formKey="f3"><bpmn:extensionElements><zeebe:userTask/>'
        "</bpmn:extensionElements></bpmn:userTask>"
        '<bpmn:userTask id="d"><bpmn:extensionElements><zeebe:formDefinition formId="f4"/>'
        "</bpmn:extensionElements></bpmn:userTask>"
    )
    graph = parse_bpmn(document(chain(uengine, camunda, zeebe)))
    a, b, c, d = (graph.node(i).activity for i in "abcd")
    assert a is not None and b is not None and c is not None and d is not None
    assert (a.agent, a.agent_mode, a.form_id, a.instruction) == (
        "llm",
        AgentMode.DRAFT,
        "f1",
        "Check it",
    )
    assert (a.input_data, a.output_data, a.duration_days, a.role) == (("x",), ("y",), 2.0, "clerk")
    assert (b.agent, b.agent_mode, b.input_data) == ("researcher", AgentMode.COMPLETE, ("x", "y"))
    assert b.task_type is TaskType.SERVICE
    assert (c.form_id, d.form_id) == ("f3", "f4")


def test_flow_conditions_cel_juel_and_text() -> None:
    body = (
        '<bpmn:startEvent id="start"/><bpmn:exclusiveGateway id="x" default="d"/>'
        '<bpmn:endEvent id="end"/><bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="x"/>'
        '<bpmn:sequenceFlow id="juel" sourceRef="x" targetRef="end"><bpmn:conditionExpression '
        'xsi:type="bpmn:tFormalExpression">${amount &gt; 5}</bpmn:conditionExpression>'
        "</bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="text" sourceRef="x" targetRef="end"><bpmn:extensionElements>'
        '<uengine:properties><uengine:json>{"condition": "the customer is unhappy", '
        '"conditionMode": "text", "priority": 3}</uengine:json></uengine:properties>'
        "</bpmn:extensionElements></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="d" sourceRef="x" targetRef="end"/>'
        '<bpmn:dataObject id="o" name="amount"/>'
    )
    graph = parse_bpmn(document(body))
    check(graph)
    juel, text, _default = graph.outgoing("x")
    assert (juel.condition, juel.condition_mode) == ("amount > 5", "expression")
    assert (text.condition, text.condition_mode, text.priority) == (
        "the customer is unhappy",
        "text",
        3,
    )


def test_every_unsupported_element_is_listed_with_its_id_and_type() -> None:
    body = chain(
        '<bpmn:sendTask id="send"/>',
        '<bpmn:businessRuleTask id="rules"/>',
        '<bpmn:intermediateThrowEvent id="throw"/>',
        '<bpmn:eventBasedGateway id="ebg"/>',
        '<bpmn:userTask id="multi"><bpmn:multiInstanceLoopCharacteristics/></bpmn:userTask>',
        '<bpmn:userTask id="listener"><bpmn:extensionElements>'
        '<camunda:taskListener event="create"/></bpmn:extensionElements></bpmn:userTask>',
    ).replace(
        '<bpmn:endEvent id="end"/>',
        '<bpmn:endEvent id="end"><bpmn:terminateEventDefinition id="term"/></bpmn:endEvent>',
    )
    body += (
        '<bpmn:boundaryEvent id="err" attachedToRef="send"><bpmn:errorEventDefinition/>'
        "</bpmn:boundaryEvent>"
    )
    body += '<bpmn:subProcess id="esp" triggeredByEvent="true"/>'
    with pytest.raises(ProcessDefinitionInvalid) as caught:
        parse_bpmn(document(body, extra='<bpmn:error id="E1"/>'))
    listed = {(p.id, p.problem) for p in caught.value.problems}
    assert ("send", "unsupported BPMN element sendTask") in listed
    assert ("rules", "unsupported BPMN element businessRuleTask") in listed
    assert ("throw", "unsupported BPMN element intermediateThrowEvent") in listed
    assert ("ebg", "unsupported BPMN element eventBasedGateway") in listed
    assert ("multi", "unsupported BPMN element multiInstanceLoopCharacteristics") in listed
    assert (
        "listener",
        "unsupported extension element {http://camunda.org/schema/1.0/bpmn}taskListener",
    ) in listed
    assert ("end", "unsupported BPMN element endEvent (terminateEventDefinition)") in listed
    assert ("err", "unsupported BPMN element boundaryEvent (errorEventDefinition)") in listed
    assert ("esp", "unsupported BPMN element event sub-process") in listed
    assert ("E1", "unsupported BPMN element error") in listed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            "<d>&b;</d>",
            "DTDs and entities are not allowed",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>',
            "DTDs and entities are not allowed",
        ),
        ("<bpmn:definitions", "not well-formed XML"),
        ("<definitions/>", "the root element is not bpmn:definitions"),
        (f"{HEAD}</bpmn:definitions>", "exactly one process (0 found)"),
        (
            f'{HEAD}<bpmn:process id="a"/><bpmn:process id="b"/></bpmn:definitions>',
            "exactly one process (2 found)",
        ),
    ],
)
def test_hostile_or_malformed_documents(text: str, problem: str) -> None:
    with pytest.raises(ProcessDefinitionInvalid) as caught:
        parse_bpmn(text)
    assert problem in caught.value.message


def test_documents_over_the_size_cap_are_refused_unread() -> None:
    padding = "<!--" + "x" * MAX_BPMN_BYTES + "-->"
    with pytest.raises(ProcessDefinitionInvalid, match="over"):
        parse_bpmn(document(chain(), extra=padding))


def test_the_bpmn_example_is_valid() -> None:
    graph = parse_bpmn((EXAMPLES / "expense_approval.bpmn").read_text())
    check(graph)
    assert graph.node("decision").default_flow == "f_rejected"
    assert {r.name: r.default for r in graph.roles} == {
        "employee": None,
        "controller": "controller@example.com",
        "manager": "manager@example.com",
    }


def test_nesting_is_bounded() -> None:
    inner = chain()
    for depth in range(30):
        inner = chain(f'<bpmn:subProcess id="sp{depth}">{inner}</bpmn:subProcess>')
    with pytest.raises(ProcessDefinitionInvalid, match="nested more than 20 deep"):
        parse_bpmn(document(inner))


def test_a_duration_out_of_range_is_a_problem() -> None:
    body = chain(
        '<bpmn:userTask id="t"><bpmn:extensionElements><uengine:properties>'
        '<uengine:json>{"duration": 1e400}</uengine:json></uengine:properties>'
        "</bpmn:extensionElements></bpmn:userTask>"
    )
    with pytest.raises(ProcessDefinitionInvalid, match="duration must be between"):
        check(parse_bpmn(document(body)))

"""ProcessGPT definition JSON → the internal model, with the quirks of real exports."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from processgpt.domain.errors import ProcessDefinitionInvalid
from processgpt.domain.process.model import AgentMode, NodeKind, ProcessGraph, TaskType
from processgpt.domain.process.processgpt_json import parse_processgpt_json
from processgpt.domain.process.validate import check, problems

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "processes"


def props(**values: Any) -> str:
    """ProcessGPT stores ``properties`` as JSON text."""
    return json.dumps(values, ensure_ascii=False)


def exported() -> dict[str, Any]:
    """A definition shaped like ProcessGPT's exports: events listed twice (in ``events`` and
    ``gateways``), properties as JSON text, a sub-process both flat (``process``) and under
    ``children``, Korean names, role defaults as lists, a natural-language condition and a
    ``conditionFunction``."""
    start = {"id": "Event_s", "type": "startEvent", "process": "Process_1", "properties": "{}"}
    end = {"id": "Event_e", "type": "endEvent", "process": "Process_1", "properties": "{}"}
    sub_start = {"id": "Event_ss", "type": "startEvent", "process": "Sub_1", "properties": "{}"}
    sub_end = {"id": "Event_se", "type": "endEvent", "process": "Sub_1", "properties": "{}"}
    sub_task = {
        "id": "Activity_write",
        "name": "뉴스레터 작성",
        "type": "userTask",
        "role": "디자이너",
        "tool": "formHandler:write_form",
        "process": "Sub_1",
        "duration": 5,
        "agentMode": "draft",
        "orchestration": "crewai-deep-research",
        "inputData": ["request_form.detail"],
    }
    sub_seqs = [
        {"id": "s1", "source": "Event_ss", "target": "Activity_write", "properties": "{}"},
        {"id": "s2", "source": "Activity_write", "target": "Event_se", "properties": "{}"},
    ]
    return {
        "processDefinitionId": "newsletter",
        "processDefinitionName": "뉴스레터",
        "data": [{"name": "budget", "type": "Number", "description": "예산"}],
        "roles": [
            {"name": "고객", "default": ["827ac44b-1435-4ad8-ab14-8b28c3f64ef2"], "endpoint": ""},
            {"name": "디자이너", "default": "", "endpoint": ""},
            {"name": "팀장", "default": "lead@example.com"},
        ],
        "events": [start, end, sub_start, sub_end],
        "gateways": [
            {
                "id": "Gateway_x",
                "type": "exclusiveGateway",
                "process": "Process_1",
                "condition": {},
                "conditionData": ["review_form.approval_status"],
                "properties": "{}",
            },
            dict(start),
            dict(end),
        ],
        "activities": [
            {
                "id": "Activity_request",
                "name": "요청사항입력",
                "type": "userTask",
                "role": "고객",
                "tool": "formHandler:request_form",
                "duration": 5,
                "agentMode": "none",
                "attachedEvents": None,
            },
            {
                "id": "Activity_review",
                "name": "검토",
                "type": "userTask",
                "role": "팀장",
                "tool": "formHandler:review_form",
                "agentMode": "none",
                "orchestration": "none",
            },
            sub_task,
        ],
        "subProcesses": [
            {
                "id": "Sub_1",
                "name": "작성",
                "type": "subProcess",
                "process": "Process_1",
                "children": {
                    "events": [sub_start, sub_end],
                    "activities": [{"id": "Activity_write", "type": "userTask"}],
                    "sequences": sub_seqs,
                },
            }
        ],
        "sequences": [
            {"id": "f1", "source": "Event_s", "target": "Activity_request", "properties": "{}"},
            {"id": "f2", "source": "Activity_request", "target": "Sub_1", "properties": "{}"},
            {"id": "f3", "source": "Sub_1", "target": "Activity_review", "condition": ""},
            {"id": "f4", "source": "Activity_review", "target": "Gateway_x"},
            {
                "id": "f_ok",
                "name": "승인",
                "source": "Gateway_x",
                "target": "Event_e",
                "properties": props(
                    condition="결재 완료 시",
                    conditionMode="function",
                    conditionFunction='"approved" in approval_status',
                    priority=1,
                ),
            },
            {
                "id": "f_again",
                "name": "반려",
                "source": "Gateway_x",
                "target": "Sub_1",
                "properties": props(condition="검토 내용이 반려일 경우", conditionMode="text"),
            },
            {
                "id": "f_default",
                "source": "Gateway_x",
                "target": "Activity_request",
                "properties": props(isDefault=True),
            },
            *sub_seqs,
        ],
    }


def test_a_real_export_parses_and_validates() -> None:
    graph = parse_processgpt_json(exported())
    assert problems(graph) == []
    assert graph.id == "newsletter" and graph.name == "뉴스레터"
    assert [n.id for n in graph.nodes] == [
        "Event_s",
        "Event_e",
        "Gateway_x",
        "Activity_request",
        "Activity_review",
        "Sub_1",
    ]
    request = graph.node("Activity_request").activity
    assert request is not None
    assert request.form_id == "request_form" and request.duration_days == 5.0
    assert request.agent_mode is AgentMode.NONE and request.role == "고객"
    assert graph.node("Activity_review").activity.orchestration is None  # type: ignore[union-attr]
    sub = graph.node("Sub_1").subprocess
    assert sub is not None and [n.id for n in sub.nodes] == [
        "Event_ss",
        "Event_se",
        "Activity_write",
    ]
    assert [f.id for f in sub.flows] == ["s1", "s2"]
    write = sub.node("Activity_write").activity
    assert write is not None and write.agent_mode is AgentMode.DRAFT
    assert write.orchestration == "crewai-deep-research"
    assert write.input_data == ("request_form.detail",)
    ok, again, default = (graph.outgoing("Gateway_x")[i] for i in range(3))
    assert (ok.condition, ok.condition_mode, ok.priority) == (
        '"approved" in approval_status',
        "expression",
        1,
    )
    assert (again.condition, again.condition_mode) == ("검토 내용이 반려일 경우", "text")
    assert graph.node("Gateway_x").default_flow == default.id == "f_default"
    roles = {r.name: r.default for r in graph.roles}
    assert roles == {
        "고객": "827ac44b-1435-4ad8-ab14-8b28c3f64ef2",
        "디자이너": None,
        "팀장": "lead@example.com",
    }
    variables = {v.name: v for v in graph.variables}
    assert variables["budget"].type == "number"
    assert variables["request_form"].type == "object"  # a form's values live under its id
    assert variables["approval_status"].path == "review_form.approval_status"
    assert ProcessGraph.from_json(json.loads(json.dumps(graph.to_json()))) == graph


def test_the_published_id_wins_and_a_missing_one_is_a_problem() -> None:
    assert parse_processgpt_json(exported(), definition_id="other").id == "other"
    data = exported()
    del data["processDefinitionId"]
    with pytest.raises(ProcessDefinitionInvalid, match="processDefinitionId is missing"):
        parse_processgpt_json(data)


def test_without_events_the_first_and_last_steps_get_a_start_and_an_end() -> None:
    data = {
        "processDefinitionId": "p",
        "roles": [{"name": "r"}],
        "activities": [
            {"id": "a", "type": "userTask", "role": "r"},
            {"id": "b", "type": "manualTask", "role": "r"},
        ],
        "sequences": [{"id": "ab", "source": "a", "target": "b"}],
    }
    graph = parse_processgpt_json(data)
    check(graph)
    assert graph.starts[0].id == "start" and graph.outgoing("start")[0].target == "a"
    assert graph.incoming("end")[0].source == "b"
    assert graph.node("b").activity.task_type is TaskType.MANUAL  # type: ignore[union-attr]


def test_timers_messages_calls_and_boundaries() -> None:
    data = {
        "processDefinitionId": "p",
        "events": [
            {"id": "s", "type": "startEvent"},
            {
                "id": "wait",
                "type": "intermediateCatchEvent",
                "definitionType": "bpmn:timerEventDefinition",
                "properties": props(timeDuration="PT1H"),
            },
            {
                "id": "paid",
                "type": "intermediateCatchEvent",
                "definitionType": "bpmn:messageEventDefinition",
                "properties": props(messageName="payment_received"),
            },
            {
                "id": "late",
                "type": "boundaryEvent",
                "definitionType": "bpmn:timerEventDefinition",
                "properties": props(timeDate="2030-01-01T00:00:00Z", cancelActivity=False),
            },
            {"id": "e", "type": "endEvent"},
        ],
        "activities": [
            {"id": "t", "type": "userTask", "attachedEvents": ["late"]},
            {"id": "c", "type": "callActivity", "properties": props(definitionId="child")},
        ],
        "sequences": [
            {"id": "1", "source": "s", "target": "t"},
            {"id": "2", "source": "t", "target": "wait"},
            {"id": "3", "source": "wait", "target": "paid"},
            {"id": "4", "source": "paid", "target": "c"},
            {"id": "5", "source": "c", "target": "e"},
            {"id": "6", "source": "late", "target": "e"},
        ],
    }
    graph = parse_processgpt_json(data)
    check(graph)
    assert graph.node("wait").kind is NodeKind.TIMER
    assert graph.node("wait").timer.duration == "PT1H"  # type: ignore[union-attr]
    assert graph.node("paid").event_name == "payment_received"
    assert graph.node("c").called == "child"
    (late,) = graph.node("t").boundary
    assert late.timer.date == "2030-01-01T00:00:00Z" and late.interrupting is False


def test_every_shape_problem_is_reported_at_once() -> None:
    data = exported()
    data["activities"].append({"id": "odd", "type": "businessRuleTask"})
    data["activities"].append({"id": "bad_mode", "type": "userTask", "agentMode": "sometimes"})
    data["events"].append({"id": "throw", "type": "intermediateThrowEvent"})
    data["events"].append(
        {
            "id": "cron",
            "type": "intermediateCatchEvent",
            "definitionType": "timer",
            "properties": props(expression="* * * * *"),
        }
    )
    data["sequences"].append({"id": "broken", "source": "a", "target": "b", "properties": "{"})
    data["sequences"].append(
        {"id": "prio", "source": "a", "target": "b", "properties": props(priority="high")}
    )
    data["roles"].append({"name": "many", "default": ["a", "b"]})
    data["sequences"].append(
        {
            "id": "scoped",
            "source": "Gateway_x",
            "target": "Event_e",
            "properties": props(conditionFunction="review_form: x == 1"),
        }
    )
    with pytest.raises(ProcessDefinitionInvalid) as caught:
        parse_processgpt_json(data)
    found = {(p.id, p.problem.split(" ")[0]) for p in caught.value.problems}
    assert {
        ("odd", "unsupported"),
        ("bad_mode", "agentMode"),
        ("throw", "unsupported"),
        ("cron", "cron"),
        ("broken", "properties"),
        ("prio", "priority"),
        ("many", "a"),
        ("scoped", "a"),
    } <= found
    assert caught.value.details == [p.as_json() for p in caught.value.problems]
    assert "\n" in caught.value.message  # one problem per line


@pytest.mark.parametrize("bad", [None, [], "text", 3])
def test_a_document_that_is_no_object_is_refused(bad: Any) -> None:
    with pytest.raises(ProcessDefinitionInvalid):
        parse_processgpt_json(bad)


def test_malformed_lists_are_problems_not_crashes() -> None:
    data = copy.deepcopy(exported())
    data["activities"] = "not a list"
    data["sequences"].append("nope")
    data["sequences"].append({"id": 7})
    with pytest.raises(ProcessDefinitionInvalid) as caught:
        parse_processgpt_json(data)
    texts = [p.problem for p in caught.value.problems]
    assert "activities must be a list" in texts
    assert any("must be an object with a string id" in t for t in texts)


@pytest.mark.parametrize("name", ["expense_approval", "parallel_review", "timer_escalation"])
def test_the_examples_are_valid(name: str) -> None:
    graph = parse_processgpt_json(json.loads((EXAMPLES / f"{name}.json").read_text()))
    check(graph)


def test_a_sub_process_inside_itself_is_a_problem_not_a_crash() -> None:
    def sub(sp_id: str, children: dict[str, Any]) -> dict[str, Any]:
        return {"id": sp_id, "type": "subProcess", "children": children}

    looped = {
        "processDefinitionId": "p",
        "subProcesses": [sub("a", {"subProcesses": [sub("a", {})]})],
    }
    with pytest.raises(ProcessDefinitionInvalid):
        check(parse_processgpt_json(looped))
    deep: dict[str, Any] = {}
    for depth in range(40):
        deep = {"subProcesses": [sub(f"s{depth}", deep)]}
    with pytest.raises(ProcessDefinitionInvalid, match="nested too deeply"):
        parse_processgpt_json({"processDefinitionId": "p", **deep})

"""Publish-time validation: every problem of a graph, at once."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from processgpt.domain.errors import ProcessDefinitionInvalid
from processgpt.domain.process.model import (
    Activity,
    AgentMode,
    BoundaryTimer,
    Flow,
    Node,
    NodeKind,
    ProcessGraph,
    Role,
    TimerSpec,
    Variable,
)
from processgpt.domain.process.validate import check, forms_of, problems


def task(node_id: str, **activity: object) -> Node:
    return Node(node_id, NodeKind.TASK, activity=Activity(**activity))  # type: ignore[arg-type]


def graph(nodes: list[Node], flows: list[tuple[str, str, str]], **kwargs: object) -> ProcessGraph:
    return ProcessGraph(
        "p",
        nodes=tuple(nodes),
        flows=tuple(Flow(i, s, t) for i, s, t in flows),
        **kwargs,  # type: ignore[arg-type]
    )


def found(g: ProcessGraph) -> set[tuple[str | None, str]]:
    return {(p.id, p.problem) for p in problems(g)}


START, END = Node("s", NodeKind.START), Node("e", NodeKind.END)


def test_a_minimal_process_is_valid() -> None:
    check(graph([START, task("a"), END], [("1", "s", "a"), ("2", "a", "e")]))


def test_structure_problems_are_all_listed() -> None:
    g = graph(
        [
            START,
            task("a"),
            task("orphan"),
            task("stuck"),
            task("a"),  # duplicate
            END,
        ],
        [
            ("1", "s", "a"),
            ("2", "a", "e"),
            ("3", "a", "ghost"),
            ("4", "nobody", "e"),
            ("5", "orphan", "e"),
            ("6", "s", "stuck"),
            ("7", "e", "a"),
        ],
    )
    result = found(g)
    assert ("a", "duplicate id") in result
    assert ("3", "target 'ghost' does not exist") in result
    assert ("4", "source 'nobody' does not exist") in result
    assert ("orphan", "not reachable from a start event") in result
    assert ("stuck", "nothing leaves this task: add a flow (or an end event)") in result
    assert ("e", "an end event has no outgoing flows") in result
    with pytest.raises(ProcessDefinitionInvalid) as caught:
        check(g)
    assert len(caught.value.problems) == len(problems(g)) >= 6


def test_no_start_and_no_reachable_end() -> None:
    assert (None, "no start event") in found(graph([task("a"), END], [("1", "a", "e")]))
    loop = graph(
        [START, task("a"), task("b"), END], [("1", "s", "a"), ("2", "a", "b"), ("3", "b", "a")]
    )
    result = found(loop)
    assert (None, "no end event is reachable from a start event") in result
    assert ("e", "not reachable from a start event") in result


def test_gateway_rules() -> None:
    xor = Node("x", NodeKind.EXCLUSIVE, default_flow="nope")
    par = Node("p", NodeKind.PARALLEL, default_flow="p2")
    lone = Node("l", NodeKind.INCLUSIVE)
    nodes = [START, task("a"), xor, task("b"), task("c"), par, lone, task("d"), END]
    flows = [
        Flow("1", "s", "a"),
        Flow("2", "a", "x"),
        Flow("x1", "x", "b", condition="true"),
        Flow("x2", "x", "c"),  # neither conditional nor the default
        Flow("3", "b", "p"),
        Flow("p1", "p", "l", condition="true"),
        Flow("p2", "p", "d"),
        Flow("4", "l", "e"),
        Flow("5", "c", "e"),
        Flow("6", "d", "e"),
        Flow("7", "a", "e", condition="true"),  # a condition leaving a task
    ]
    result = found(ProcessGraph("p", nodes=tuple(nodes), flows=tuple(flows)))
    assert ("x", "default flow 'nope' does not leave this gateway") in result
    assert (
        "x2",
        "a flow leaving exclusive split x needs a condition (or must be its default)",
    ) in result
    assert ("p", "a parallel gateway has no default flow") in result
    assert ("p1", "a flow leaving a parallel gateway has no condition") in result
    assert (
        "l",
        "a gateway must split (several outgoing flows) or join (several incoming)",
    ) in result
    assert ("7", "conditions belong on flows leaving exclusive or inclusive gateways") in result
    assert not any(i == "p1" and "belong" in t for i, t in result)  # reported once


def test_conditions_compile_against_the_declared_variables() -> None:
    xor = Node("x", NodeKind.EXCLUSIVE, default_flow="d")
    flows = [
        Flow("1", "s", "x"),
        Flow("ok", "x", "e", condition="amount > 1000"),
        Flow("py", "x", "e", condition="__import__('os').system('id')"),
        Flow("undeclared", "x", "e", condition="salary > 1"),
        Flow("syntax", "x", "e", condition="amount >"),
        Flow("text", "x", "e", condition="the customer is unhappy", condition_mode="text"),
        Flow("long", "x", "e", condition="x" * 3000, condition_mode="text"),
        Flow("mode", "x", "e", condition="x", condition_mode="python"),
        Flow("d", "x", "e"),
    ]
    g = ProcessGraph(
        "p", nodes=(START, xor, END), flows=tuple(flows), variables=(Variable("amount", "number"),)
    )
    ids = {i for i, _ in found(g)}
    assert ids == {"py", "undeclared", "syntax", "long", "mode"}


def test_activities_timers_and_events() -> None:
    nodes = [
        START,
        task("role", role="ghost"),
        task("agentless", agent_mode=AgentMode.COMPLETE),
        Node("call", NodeKind.CALL),
        Node("msg", NodeKind.MESSAGE),
        Node("t1", NodeKind.TIMER, timer=TimerSpec(duration="1 hour")),
        Node("t2", NodeKind.TIMER, timer=TimerSpec(date="2030-01-01T00:00:00")),  # no zone
        Node("t3", NodeKind.TIMER, timer=TimerSpec(cycle="R/PT1H")),
        task(
            "host",
            role="clerk",
        ),
        END,
    ]
    nodes[-2] = replace(
        nodes[-2],
        boundary=(
            BoundaryTimer("b_ok", TimerSpec(duration="P1DT2H")),
            BoundaryTimer("b_bad", TimerSpec(duration="P")),
        ),
    )
    chain = [n.id for n in nodes]
    flows = [(f"f{i}", a, b) for i, (a, b) in enumerate(itertools.pairwise(chain))]
    flows.append(("fb", "b_ok", "e"))
    result = found(graph(nodes, flows, roles=(Role("clerk"),)))
    assert ("role", "role 'ghost' is not declared") in result
    assert ("agentless", "agentMode complete needs an agent to run it") in result
    assert ("call", "a call activity must name the definition it calls") in result
    assert ("msg", "a message event needs a name") in result
    assert any(i == "t1" and "ISO 8601 duration" in t for i, t in result)
    assert any(i == "t2" and "time zone" in t for i, t in result)
    assert ("t3", "a timer cycle is allowed on start events only") in result
    assert any(i == "b_bad" and "ISO 8601 duration" in t for i, t in result)
    assert ("b_bad", "a boundary timer needs an outgoing flow") in result
    assert not any(i in ("host", "b_ok") for i, _ in result)


def test_start_timers_cycles() -> None:
    for cycle, ok in [
        ("R/2025-01-06T09:00:00Z/P7D", True),
        ("R3/PT10M", True),
        ("0 9 * * MON", True),
        ("R/yesterday/P1D", False),
        ("every day", False),
    ]:
        start = Node("s", NodeKind.START, timer=TimerSpec(cycle=cycle))
        result = found(graph([start, task("a"), END], [("1", "s", "a"), ("2", "a", "e")]))
        assert (result == set()) is ok, (cycle, result)


def test_sub_processes_are_checked_and_ids_are_unique_across_them() -> None:
    inner = ProcessGraph(
        "sub",
        nodes=(Node("a", NodeKind.START), task("t"), Node("dead", NodeKind.TASK)),
        flows=(Flow("i1", "a", "t"),),
    )
    outer = graph(
        [START, Node("sub", NodeKind.SUBPROCESS, subprocess=inner), task("a"), END],
        [("1", "s", "sub"), ("2", "sub", "a"), ("3", "a", "e")],
    )
    result = found(outer)
    assert ("a", "duplicate id") in result
    assert ("dead", "a task without an activity (in sub-process sub)") in result
    assert (None, "no end event is reachable from a start event (in sub-process sub)") in result


def test_forms_of_lists_each_form_once() -> None:
    g = graph(
        [START, task("a", form_id="f1"), task("b", form_id="f1"), task("c", form_id="f2"), END],
        [("1", "s", "a"), ("2", "a", "b"), ("3", "b", "c"), ("4", "c", "e")],
    )
    assert forms_of(g) == ["f1", "f2"]


def test_an_ambiguous_inclusive_join_is_refused_at_publish() -> None:
    def gw(node_id: str, kind: NodeKind) -> Node:
        return Node(node_id, kind)

    closed_by_parallel = graph(
        [
            START,
            gw("i1", NodeKind.INCLUSIVE),
            task("a"),
            task("b"),
            gw("p2", NodeKind.PARALLEL),
            END,
        ],
        [
            ("1", "s", "i1"),
            ("2", "i1", "a"),
            ("3", "i1", "b"),
            ("4", "a", "p2"),
            ("5", "b", "p2"),
            ("6", "p2", "e"),
        ],
    )
    assert any(pid == "i1" and "parallel" in text for pid, text in found(closed_by_parallel))
    with pytest.raises(ProcessDefinitionInvalid):
        check(closed_by_parallel)


def test_an_id_with_the_path_separator_is_refused() -> None:
    # "/" joins a sub-process's path and a timer's key: "a/1" as a node id would make the
    # key of node "a"'s first timer ambiguous, and a sub-process "x/y" an unreadable path.
    inner = ProcessGraph(
        "sub",
        nodes=(Node("in/start", NodeKind.START), task("in_t"), Node("in_end", NodeKind.END)),
        flows=(Flow("i1", "in/start", "in_t"), Flow("i2", "in_t", "in_end")),
    )
    outer = graph(
        [START, Node("sub/1", NodeKind.SUBPROCESS, subprocess=inner), END],
        [("1", "s", "sub/1"), ("2", "sub/1", "e")],
    )
    result = found(outer)
    assert ("sub/1", "id contains '/'") in result
    assert ("in/start", "id contains '/'") in result

"""Token semantics of the pure engine: sequence, exclusive, parallel, inclusive, loops, and
the bounded walk. One construct per test; each checks the tasks created, the state and the
history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from processgpt.domain.process.engine import advance, start
from processgpt.domain.process.events import (
    EventRejected,
    ResolveIncident,
    StartRejected,
    TaskCompleted,
)
from processgpt.domain.process.model import NodeKind, Role
from processgpt.domain.process.publish import compile_definition
from processgpt.domain.process.state import IncidentKind, InstanceStatus, Wait
from processgpt.domain.process.step import (
    CreateTask,
    HistoryKind,
    InstanceCompleted,
    OpenIncident,
    Step,
)
from processgpt.domain.process.walk import MAX_ARRIVALS
from tests.domain.process.builders import T0, Run, build, flow, of_type, task

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "processes"


def test_sequence_runs_task_after_task_and_completes() -> None:
    run = Run.start(build("s>a a>b b>e"))
    assert run.created() == [("a", 1)]
    assert run.state.status is InstanceStatus.RUNNING
    assert run.state.current_activity_ids == ["a"]
    run.complete("a", {"x": 1})
    assert run.created() == [("a", 1), ("b", 1)]
    assert run.state.current_activity_ids == ["b"]
    step = run.complete("b")
    assert run.state.status is InstanceStatus.COMPLETED
    assert run.state.tokens == ()
    assert of_type(step.decisions, InstanceCompleted) == [InstanceCompleted({"x": 1})]
    assert run.kinds() == [
        HistoryKind.INSTANCE_STARTED,
        HistoryKind.STEP_STARTED,
        HistoryKind.STEP_COMPLETED,
        HistoryKind.STEP_STARTED,
        HistoryKind.STEP_COMPLETED,
        HistoryKind.END_REACHED,
        HistoryKind.INSTANCE_COMPLETED,
    ]


def test_a_finished_instance_takes_no_more_events() -> None:
    run = Run.start(build("s>a a>e"))
    run.complete("a")
    with pytest.raises(EventRejected, match="COMPLETED"):
        advance(run.graph, run.state, TaskCompleted("a", 1), now=T0)


def test_completion_of_a_task_that_is_not_open_is_rejected_and_changes_nothing() -> None:
    run = Run.start(build("s>a a>b b>e"))
    run.complete("a")
    before = run.state
    for event in (TaskCompleted("a", 1), TaskCompleted("b", 2), TaskCompleted("zz", 1)):
        with pytest.raises(EventRejected):
            advance(run.graph, run.state, event, now=T0)
    assert run.state == before


def test_exclusive_takes_first_true_flow_by_priority_then_document_order() -> None:
    graph = build(
        [
            flow("s", "x"),
            flow("x", "low", "amount > 0", priority=5),
            flow("x", "first", "amount > 10"),
            flow("x", "second", "amount > 10"),
            flow("low", "e"),
            flow("first", "e"),
            flow("second", "e"),
        ],
        variables=["amount"],
    )
    assert Run.start(graph, {"amount": 50}).created() == [("first", 1)]
    assert Run.start(graph, {"amount": 5}).created() == [("low", 1)]
    decision = Run.start(graph, {"amount": 50}).entries(HistoryKind.GATEWAY_DECISION)[0]
    assert decision.node_id == "x"
    assert decision.data["taken"] == [{"flow": "x-first", "target": "first", "why": "condition"}]
    # Evaluation stops at the first flow that holds.
    assert [e["flow"] for e in decision.data["evaluated"]] == ["x-first"]


def test_exclusive_falls_back_to_the_default_flow() -> None:
    graph = build(
        "s>x x>big:amount > 100 x>low big>e low>e",
        variables=["amount"],
        defaults={"x": "x-low"},
    )
    run = Run.start(graph, {"amount": 1})
    assert run.created() == [("low", 1)]
    decision = run.entries(HistoryKind.GATEWAY_DECISION)[0].data
    assert decision["taken"][0]["why"] == "default"
    assert decision["evaluated"][0]["result"] is False


def test_exclusive_without_match_or_default_is_an_incident_and_resolving_reevaluates() -> None:
    graph = build("s>x x>big:amount > 100 x>mid:amount > 10 big>e mid>e", variables=["amount"])
    run = Run.start(graph, {"amount": 1})
    assert run.state.status is InstanceStatus.INCIDENT
    assert run.created() == []
    [incident] = run.state.incidents.values()
    assert incident.kind is IncidentKind.NO_FLOW
    assert incident.node_id == "x"
    assert "no outgoing flow of 'x' holds" in incident.reason
    [token] = run.state.tokens
    assert token.wait is Wait.INCIDENT
    assert token.node_id == "x"
    assert of_type(run.decisions, OpenIncident)[0].id == incident.id
    # The token waits at the gateway: resolving with fixed variables re-evaluates.
    run.send(ResolveIncident(incident.id, {"amount": 500}))
    assert run.created() == [("big", 1)]
    assert run.state.status is InstanceStatus.RUNNING
    assert run.state.incidents == {}
    # Resolving an incident that is not open is refused.
    with pytest.raises(EventRejected):
        run.send(ResolveIncident(incident.id))


def test_a_condition_that_fails_at_run_time_is_an_incident_not_a_dropped_branch() -> None:
    graph = build("s>x x>a:amount > 1 x>b a>e b>e", variables=["amount"])
    run = Run.start(graph, {"amount": "not a number"})
    [incident] = run.state.incidents.values()
    assert incident.kind is IncidentKind.CONDITION
    assert "amount > 1" in incident.reason
    run.send(ResolveIncident(incident.id, {"amount": 3}))
    assert run.created() == [("a", 1)]


def test_conditions_on_flows_leaving_a_task_take_every_flow_that_holds() -> None:
    graph = build("s>a a>b:n > 1 a>c:n > 2 a>d:n > 100 b>e c>e d>e", variables=["n"])
    run = Run.start(graph, {"n": 5})
    run.complete("a")
    assert run.open_task_ids() == ["b", "c"]


def test_parallel_fork_and_join_fires_once_whatever_the_order() -> None:
    graph = build("s>p1 p1>a p1>b p1>c a>p2 b>p2 c>p2 p2>d d>e")
    for order in (["a", "b", "c"], ["c", "b", "a"], ["b", "a", "c"]):
        run = Run.start(graph)
        assert run.open_task_ids() == ["a", "b", "c"]
        for node in order[:-1]:
            run.complete(node)
            assert ("d", 1) not in run.created()
        run.complete(order[-1])
        assert [c for c in run.created() if c[0] == "d"] == [("d", 1)]
        assert len(run.entries(HistoryKind.JOIN_FIRED)) == 1
        run.complete("d")
        assert run.state.status is InstanceStatus.COMPLETED


def test_parallel_join_tokens_wait_at_the_join() -> None:
    run = Run.start(build("s>p1 p1>a p1>b a>p2 b>p2 p2>e"))
    run.complete("a")
    waiting = [t for t in run.state.tokens if t.wait is Wait.JOIN]
    assert [(t.node_id, t.via) for t in waiting] == [("p2", "a-p2")]
    assert sorted(run.state.current_activity_ids) == ["b", "p2"]


def test_inclusive_split_activates_true_flows_and_its_join_waits_for_exactly_those() -> None:
    graph = build(
        "s>i1 i1>a:n > 1 i1>b:n > 2 i1>c:n > 100 a>i2 b>i2 c>i2 i2>d d>e", variables=["n"]
    )
    run = Run.start(graph, {"n": 5})
    assert run.open_task_ids() == ["a", "b"]
    run.complete("b")
    assert ("d", 1) not in run.created()
    run.complete("a")
    assert ("d", 1) in run.created()
    run.complete("d")
    assert run.state.status is InstanceStatus.COMPLETED


def test_inclusive_split_with_one_branch_fires_the_join_at_once() -> None:
    graph = build("s>i1 i1>a:n > 1 i1>b:n > 2 a>i2 b>i2 i2>d d>e", variables=["n"])
    run = Run.start(graph, {"n": 2})
    assert run.open_task_ids() == ["a"]
    run.complete("a")
    assert run.open_task_ids() == ["d"]


def test_inclusive_split_default_and_incident() -> None:
    graph = build(
        "s>i1 i1>a:n > 1 i1>b:n > 2 i1>c a>i2 b>i2 c>i2 i2>e",
        variables=["n"],
        defaults={"i1": "i1-c"},
    )
    assert Run.start(graph, {"n": 0}).open_task_ids() == ["c"]
    no_default = build("s>i1 i1>a:n > 1 i1>b:n > 2 a>i2 b>i2 i2>e", variables=["n"])
    run = Run.start(no_default, {"n": 0})
    assert run.state.status is InstanceStatus.INCIDENT
    assert next(iter(run.state.incidents.values())).kind is IncidentKind.NO_FLOW


def test_inclusive_join_waits_for_a_branch_that_is_still_several_steps_away() -> None:
    graph = build("s>i1 i1>a:true i1>b:true b>b2 b2>b3 a>i2 b3>i2 i2>d d>e")
    run = Run.start(graph)
    run.complete("a")
    run.complete("b")
    assert run.open_task_ids() == ["b2"]
    run.complete("b2")
    run.complete("b3")
    assert run.open_task_ids() == ["d"]


def test_nested_parallel_inside_an_inclusive_block() -> None:
    graph = build(
        "s>i1 i1>p1:true i1>c:false p1>a p1>b a>p2 b>p2 p2>i2 c>i2 i2>d d>e",
    )
    run = Run.start(graph)
    assert run.open_task_ids() == ["a", "b"]
    run.complete("a")
    run.complete("b")
    assert run.open_task_ids() == ["d"]


def test_loop_back_creates_new_activations() -> None:
    graph = build("s>a a>x x>a:again x>b b>e", variables=["again"], defaults={"x": "x-b"})
    run = Run.start(graph)
    run.complete("a", {"again": True})
    run.complete("a", {"again": True})
    run.complete("a", {"again": False})
    assert run.created() == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    started = [(h.node_id, h.activation) for h in run.entries(HistoryKind.STEP_STARTED)]
    assert started == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    # A completion for an earlier activation is stale.
    with pytest.raises(EventRejected):
        run.send(TaskCompleted("a", 2))


def test_parallel_join_in_a_loop_fires_once_per_round() -> None:
    graph = build(
        "s>xm xm>p1 p1>a p1>b a>p2 b>p2 p2>x x>xm:again x>e",
        variables=["again"],
        defaults={"x": "x-e"},
    )
    run = Run.start(graph, {"again": True})
    run.complete("a")
    run.complete("b")
    assert sorted(run.open_tasks()) == [("a", 2), ("b", 2)]
    run.complete("b", {"again": False})
    run.complete("a")
    assert run.state.status is InstanceStatus.COMPLETED
    assert len(run.entries(HistoryKind.JOIN_FIRED)) == 2


def test_a_cycle_of_gateways_stops_with_an_incident_instead_of_hanging() -> None:
    graph = build("s>x1 x1>x2 x2>x1")
    step = start(graph, now=T0)
    assert isinstance(step, Step)
    assert step.state.status is InstanceStatus.INCIDENT
    [incident] = step.state.incidents.values()
    assert incident.kind is IncidentKind.WALK_LIMIT
    assert str(MAX_ARRIVALS) in incident.reason


def test_a_forking_cycle_is_bounded_too() -> None:
    graph = build("s>x0 x0>p1 p1>x1 p1>x2 x1>x0 x2>x0")
    step = start(graph, now=T0)
    assert isinstance(step, Step)
    assert step.state.status is InstanceStatus.INCIDENT
    assert all(t.wait in (Wait.INCIDENT, Wait.JOIN) for t in step.state.tokens)


def test_task_without_outgoing_flow_is_an_implicit_end() -> None:
    run = Run.start(build("s>a"))
    run.complete("a")
    assert run.state.status is InstanceStatus.COMPLETED
    assert run.entries(HistoryKind.END_REACHED)[0].data == {"implicit": True}


def test_task_creation_carries_role_assignee_input_and_sla() -> None:

    graph = build(
        "s>a a>b b>e",
        nodes=[
            task("a", role="clerk", input_data=("amount",), duration_days=2, agent="llm"),
            task("b", role="boss"),
        ],
        roles=[Role("clerk", default="pool"), Role("boss", default="ceo")],
        variables=["amount"],
    )
    run = Run.start(graph, {"amount": 3, "other": 1}, roles={"clerk": "alice"})
    [create] = of_type(run.decisions, CreateTask)
    assert create.assignee == "alice"
    assert create.input == {"amount": 3}
    assert create.due_at is not None and (create.due_at - T0).days == 2
    assert create.activity.agent == "llm"
    run.complete("a")
    create_b = of_type(run.decisions, CreateTask)[1]
    assert create_b.assignee == "ceo"
    assert create_b.input == {"amount": 3, "other": 1}
    assert create_b.due_at is None


def test_start_picks_the_start_node() -> None:
    with pytest.raises(StartRejected):
        start(build("a>e"), now=T0)
    graph = build("s1>a s2>b a>e b>e")
    with pytest.raises(StartRejected):
        start(graph, now=T0, start_node="a")
    step = start(graph, now=T0, start_node="s2")
    assert isinstance(step, Step)
    assert [t.node_id for t in step.state.tokens] == ["b"]
    assert graph.node("s1").kind is NodeKind.START


def test_resolving_a_walk_limit_incident_walks_again_with_a_fresh_budget() -> None:
    run = Run.start(build("s>x1 x1>x2 x2>x1"))
    [incident] = run.state.incidents
    run.send(ResolveIncident(incident))
    [again] = run.state.incidents.values()
    assert again.id != incident
    assert again.kind is IncidentKind.WALK_LIMIT


def test_a_condition_names_a_form_field_through_condition_data() -> None:
    """The expense example's gateway says ``decision == 'approve'``; ``decision`` is
    ``approval_form.decision`` (the gateway's ``conditionData``), read from the form's values."""
    source = json.loads((EXAMPLES / "expense_approval.json").read_text())
    graph = compile_definition("expense_approval", source).graph
    run = Run.start(graph)
    run.complete("file_expense", {"expense_form": {"amount": 12, "reason": "taxi"}})
    run.complete("assess", {"assessment_form": {"summary": "fine"}})
    run.complete("approve", {"approval_form": {"decision": "approve", "comment": ""}})
    [decision] = [h for h in run.history if h.kind is HistoryKind.GATEWAY_DECISION]
    assert [t["flow"] for t in decision.data["taken"]] == ["f_approved"]
    assert run.open_task_ids() == ["pay"]

"""Text conditions (the NeedsVerdicts protocol) and migration between versions."""

from __future__ import annotations

import pytest

from processgpt.domain.process.engine import advance, start
from processgpt.domain.process.events import (
    Migrate,
    MigrationRejected,
    ResolveIncident,
    TaskCompleted,
    TimerFired,
)
from processgpt.domain.process.model import BoundaryTimer, Node, NodeKind, ProcessGraph, TimerSpec
from processgpt.domain.process.state import InstanceStatus, Wait
from processgpt.domain.process.step import (
    CancelTask,
    CancelTimer,
    CreateTask,
    CreateTimer,
    HistoryKind,
    NeedsVerdicts,
    Question,
    Step,
    Verdict,
)
from tests.domain.process.builders import T0, Run, build, flow, of_type, task


def text_graph() -> ProcessGraph:
    return build(
        [
            flow("s", "a"),
            flow("a", "x"),
            flow("x", "urgent", "the customer sounds angry", mode="text"),
            flow("x", "normal", "the request is routine", mode="text"),
            flow("x", "other"),
            flow("urgent", "e"),
            flow("normal", "e"),
            flow("other", "e"),
        ],
    )


def test_text_conditions_ask_for_verdicts_without_consuming_the_event() -> None:
    graph = text_graph()
    run = Run.start(graph)
    event = TaskCompleted("a", 1, {"mail": "WHERE IS MY PARCEL"})
    asked = advance(run.graph, run.state, event, now=T0)
    assert isinstance(asked, NeedsVerdicts)
    assert asked.questions == (
        Question("x-urgent", "x", "the customer sounds angry", "urgent"),
        Question("x-normal", "x", "the request is routine", "normal"),
    )
    assert asked.variables == {"mail": "WHERE IS MY PARCEL"}
    # The state the caller holds is unchanged; the same event with verdicts takes the step.
    verdicts = {
        "x-urgent": Verdict(True, "all caps"),
        "x-normal": Verdict(False, "not routine"),
    }
    step = run.send(event, verdicts=verdicts)
    assert run.open_task_ids() == ["urgent"]
    [decision] = [h for h in step.history if h.kind is HistoryKind.GATEWAY_DECISION]
    assert decision.data["taken"] == [{"flow": "x-urgent", "target": "urgent", "why": "verdict"}]
    assert decision.data["evaluated"][0]["reasoning"] == "all caps"


def test_verdicts_false_fall_through_to_the_unconditional_flow() -> None:
    run = Run.start(text_graph())
    no = {"x-urgent": Verdict(False), "x-normal": Verdict(False)}
    run.send(TaskCompleted("a", 1), verdicts=no)
    assert run.open_task_ids() == ["other"]


def test_exclusive_asks_only_from_the_first_flow_it_cannot_decide() -> None:
    graph = build(
        [
            flow("s", "x"),
            flow("x", "a", "n > 1"),
            flow("x", "b", "is it late?", mode="text"),
            flow("a", "e"),
            flow("b", "e"),
        ],
        variables=["n"],
    )
    decided = start(graph, {"n": 5}, now=T0)
    assert isinstance(decided, Step)  # the expression holds first: nothing to ask
    asked = start(graph, {"n": 0}, now=T0)
    assert isinstance(asked, NeedsVerdicts)
    assert [q.flow_id for q in asked.questions] == ["x-b"]


def test_later_splits_are_asked_in_a_further_round() -> None:
    graph = build(
        [
            flow("s", "x1"),
            flow("x1", "x2", "first?", mode="text"),
            flow("x1", "e"),
            flow("x2", "a", "second?", mode="text"),
            flow("x2", "e2"),
            flow("a", "e"),
        ],
    )
    first = start(graph, now=T0)
    assert isinstance(first, NeedsVerdicts)
    assert [q.flow_id for q in first.questions] == ["x1-x2"]
    known = {"x1-x2": Verdict(True)}
    second = start(graph, now=T0, verdicts=known)
    assert isinstance(second, NeedsVerdicts)
    assert [q.flow_id for q in second.questions] == ["x2-a"]
    done = start(graph, now=T0, verdicts={**known, "x2-a": Verdict(True, "yes")})
    assert isinstance(done, Step)
    assert [t.node_id for t in done.state.tokens] == ["a"]


def test_parallel_branches_collect_all_their_questions_in_one_round() -> None:
    graph = build(
        [
            flow("s", "p1"),
            flow("p1", "x1"),
            flow("p1", "x2"),
            flow("x1", "a", "q1", mode="text"),
            flow("x1", "e"),
            flow("x2", "b", "q2", mode="text"),
            flow("x2", "e2"),
        ],
        defaults={"x1": "x1-e", "x2": "x2-e2"},
    )
    asked = start(graph, now=T0)
    assert isinstance(asked, NeedsVerdicts)
    assert sorted(q.flow_id for q in asked.questions) == ["x1-a", "x2-b"]


# -- migration -----------------------------------------------------------------------------


def test_migration_keeps_open_tasks_whose_node_stays() -> None:
    v1 = build("s>a a>b b>e", gid="p")
    v2 = build("s>a a>c c>b b>e", gid="p")
    run = Run.start(v1)
    step = run.send(Migrate(v2))
    assert step.decisions == ()
    run.graph = v2
    run.complete("a")
    assert run.open_task_ids() == ["c"]
    [entry] = [h for h in step.history if h.kind is HistoryKind.MIGRATED]
    assert entry.data["moves"] == [{"token": "t1", "from": "a", "to": "a"}]


def test_migration_with_a_mapping_moves_a_waiting_step() -> None:
    v1 = build("s>a a>b b>e", gid="p")
    v2 = build("s>a2 a2>b b>e", gid="p")
    run = Run.start(v1)
    step = run.send(Migrate(v2, {"a": "a2"}))
    assert CancelTask("a", 1, "migrated to 'p'") in step.decisions
    assert [(d.node_id, d.activation) for d in of_type(step.decisions, CreateTask)] == [("a2", 1)]
    run.graph = v2
    run.complete("a2")
    assert run.open_task_ids() == ["b"]


def test_migration_that_leaves_a_token_nowhere_is_refused_with_every_problem() -> None:
    v1 = build("s>p1 p1>a p1>b a>p2 b>p2 p2>e", gid="p")
    v2 = build("s>c c>e", gid="p")
    run = Run.start(v1)
    with pytest.raises(MigrationRejected) as caught:
        advance(v1, run.state, Migrate(v2, {"zz": "c", "b": "nope"}), now=T0)
    problems = caught.value.problems
    assert any("'zz'" in p for p in problems)
    assert any("'nope'" in p for p in problems)
    assert any("'a'" in p for p in problems)
    assert run.state.status is InstanceStatus.RUNNING


def test_migration_fixes_an_incident_then_resolve_runs_on_the_new_version() -> None:
    v1 = build("s>x x>a:n > 10 a>e", variables=["n"], gid="p")
    v2 = build("s>x x>a:n > 10 x>b a>e b>e", variables=["n"], defaults={"x": "x-b"}, gid="p")
    run = Run.start(v1, {"n": 1})
    incident = next(iter(run.state.incidents))
    run.send(Migrate(v2))
    assert run.state.status is InstanceStatus.INCIDENT
    run.graph = v2
    run.send(ResolveIncident(incident))
    assert run.open_task_ids() == ["b"]


def test_migration_reconciles_boundary_timers_of_a_kept_task() -> None:
    def with_boundary(boundary_id: str) -> Node:
        return Node(
            id="a",
            kind=NodeKind.TASK,
            activity=task("a").activity,
            boundary=(BoundaryTimer(boundary_id, TimerSpec(duration="PT1H")),),
        )

    v1 = build("s>a a>e old>e", nodes=[with_boundary("old")], gid="p")
    v2 = build("s>a a>e new>late late>e", nodes=[with_boundary("new")], gid="p")
    run = Run.start(v1)
    step = run.send(Migrate(v2))
    assert CancelTimer("old/1") in step.decisions
    assert [t.key for t in of_type(step.decisions, CreateTimer)] == ["new/1"]
    run.graph = v2
    run.send(TimerFired("new/1"))
    assert run.open_task_ids() == ["late"]
    assert [t.wait for t in run.state.tokens] == [Wait.TASK]


def test_migration_cannot_park_a_waiting_task_on_a_boundary_timer() -> None:
    a = Node(
        id="a",
        kind=NodeKind.TASK,
        activity=task("a").activity,
        boundary=(BoundaryTimer("b1", TimerSpec(duration="PT1H")),),
    )
    v1 = build("s>c c>e", gid="p")
    v2 = build("s>a a>e b1>e", nodes=[a], gid="p")
    run = Run.start(v1)
    with pytest.raises(MigrationRejected, match="map it to a node"):
        advance(v1, run.state, Migrate(v2, {"c": "b1"}), now=T0)

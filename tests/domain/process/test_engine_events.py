"""Events of the pure engine other than plain task completion: timers (intermediate and
boundary), messages, signals, child instances, failures and incidents, cancellation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from processgpt.domain.process.events import (
    Cancel,
    ChildCompleted,
    ChildFailed,
    EventRejected,
    MessageReceived,
    ResolveIncident,
    SignalReceived,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)
from processgpt.domain.process.model import (
    BoundaryTimer,
    Node,
    NodeKind,
    TimerSpec,
)
from processgpt.domain.process.state import IncidentKind, InstanceStatus, Wait
from processgpt.domain.process.step import (
    CancelChild,
    CancelTask,
    CancelTimer,
    CreateTask,
    CreateTimer,
    HistoryKind,
    InstanceCancelled,
    OpenIncident,
    StartChild,
)
from tests.domain.process.builders import T0, Run, build, of_type, task


def timer_node(node_id: str, duration: str | None = "PT15M", date: str | None = None) -> Node:
    return Node(id=node_id, kind=NodeKind.TIMER, timer=TimerSpec(duration=duration, date=date))


def test_intermediate_timer_waits_then_continues() -> None:
    run = Run.start(build("s>a a>t1 t1>b b>e", nodes=[timer_node("t1", "PT15M")]))
    run.complete("a")
    [timer] = of_type(run.decisions, CreateTimer)
    assert timer == CreateTimer("t1/1", "t1", 1, T0 + timedelta(minutes=15))
    assert run.state.current_activity_ids == ["t1"]
    assert run.open_tasks() == []
    run.send(TimerFired("t1/1"))
    assert run.open_task_ids() == ["b"]
    assert run.state.timers == {}
    with pytest.raises(EventRejected):
        run.send(TimerFired("t1/1"))


def test_timer_with_a_date() -> None:
    run = Run.start(build("s>t1 t1>e", nodes=[timer_node("t1", None, "2031-05-01T10:00:00Z")]))
    [timer] = of_type(run.decisions, CreateTimer)
    assert timer.due_at.isoformat() == "2031-05-01T10:00:00+00:00"


def test_a_bad_timer_is_an_incident_and_resolving_retries_it() -> None:
    run = Run.start(build("s>t1 t1>e", nodes=[timer_node("t1", "every day")]))
    [incident] = run.state.incidents.values()
    assert incident.kind is IncidentKind.TIMER
    assert of_type(run.decisions, CreateTimer) == []
    with pytest.raises(EventRejected):
        run.send(TaskCompleted("t1", 1))
    # Resolving without fixing the definition fails again, with a new incident.
    run.send(ResolveIncident(incident.id))
    assert len(run.state.incidents) == 1
    assert next(iter(run.state.incidents.values())).id != incident.id


def boundary_graph(*, interrupting: bool) -> Run:
    a = Node(
        id="a",
        kind=NodeKind.TASK,
        name="a",
        activity=task("a").activity,
        boundary=(BoundaryTimer("b1", TimerSpec(duration="P1D"), interrupting=interrupting),),
    )
    return Run.start(build("s>a a>done b1>late done>e late>e", nodes=[a]))


def test_boundary_timer_is_armed_with_the_task_and_cancelled_when_the_task_completes() -> None:
    run = boundary_graph(interrupting=True)
    [timer] = of_type(run.decisions, CreateTimer)
    assert timer == CreateTimer("b1/1", "a", 1, T0 + timedelta(days=1), "b1", True)
    step = run.complete("a")
    assert CancelTimer("b1/1") in step.decisions
    assert run.state.timers == {}
    assert run.open_task_ids() == ["done"]
    with pytest.raises(EventRejected):
        run.send(TimerFired("b1/1"))


def test_interrupting_boundary_timer_cancels_the_task_and_takes_the_boundary_flow() -> None:
    run = boundary_graph(interrupting=True)
    step = run.send(TimerFired("b1/1"))
    assert CancelTask("a", 1, "boundary timer 'b1' interrupted it") in step.decisions
    assert not of_type(step.decisions, CancelTimer)  # the fired timer is not "cancelled"
    assert run.open_task_ids() == ["late"]
    with pytest.raises(EventRejected):
        run.send(TaskCompleted("a", 1))


def test_non_interrupting_boundary_timer_keeps_the_task_and_adds_a_branch() -> None:
    run = boundary_graph(interrupting=False)
    step = run.send(TimerFired("b1/1"))
    assert not of_type(step.decisions, CancelTask)
    assert run.open_task_ids() == ["a", "late"]
    run.complete("a")
    run.complete("late")
    run.complete("done")
    assert run.state.status is InstanceStatus.COMPLETED


def test_message_catch_waits_for_its_name_and_merges_the_payload() -> None:
    wait = Node(id="m1", kind=NodeKind.MESSAGE, event_name="payment")
    run = Run.start(build("s>m1 m1>b b>e", nodes=[wait]))
    assert [t.wait for t in run.state.tokens] == [Wait.MESSAGE]
    with pytest.raises(EventRejected, match="refund"):
        run.send(MessageReceived("refund", {}))
    run.send(MessageReceived("payment", {"paid": 12}))
    assert run.state.variables == {"paid": 12}
    assert run.open_task_ids() == ["b"]
    [entry] = run.entries(HistoryKind.MESSAGE_RECEIVED)
    assert entry.data == {"name": "payment", "keys": ["paid"]}


def test_a_message_goes_to_one_waiting_token_a_signal_to_all() -> None:
    nodes = [
        Node(id="m1", kind=NodeKind.MESSAGE, event_name="go"),
        Node(id="m2", kind=NodeKind.MESSAGE, event_name="go"),
    ]
    run = Run.start(build("s>p1 p1>m1 p1>m2 m1>a m2>b a>e b>e", nodes=nodes))
    run.send(MessageReceived("go"))
    assert run.open_task_ids() == ["a"]
    signals = [
        Node(id="g1", kind=NodeKind.SIGNAL, event_name="go"),
        Node(id="g2", kind=NodeKind.SIGNAL, event_name="go"),
    ]
    run = Run.start(build("s>p1 p1>g1 p1>g2 g1>a g2>b a>e b>e", nodes=signals))
    run.send(SignalReceived("nobody-listens"))
    assert run.open_task_ids() == []
    run.send(SignalReceived("go", {"k": 1}))
    assert run.open_task_ids() == ["a", "b"]


def test_call_activity_starts_a_child_and_continues_with_its_output() -> None:
    call = Node(id="c1", kind=NodeKind.CALL, called="billing")
    run = Run.start(build("s>c1 c1>b b>e", nodes=[call]), {"order": 7})
    [child] = of_type(run.decisions, StartChild)
    assert child == StartChild("c1", 1, "billing", None, {"order": 7})
    assert [t.wait for t in run.state.tokens] == [Wait.CHILD]
    with pytest.raises(EventRejected):
        run.send(TaskCompleted("c1", 1))
    run.send(ChildCompleted("c1", 1, {"invoice": "F-1"}))
    assert run.state.variables == {"order": 7, "invoice": "F-1"}
    assert run.open_task_ids() == ["b"]


def test_subprocess_child_carries_the_embedded_graph() -> None:
    inner = build("s>x1 x1>e", gid="inner")
    sub = Node(id="sp", kind=NodeKind.SUBPROCESS, subprocess=inner)
    run = Run.start(build("s>sp sp>e", nodes=[sub]))
    [child] = of_type(run.decisions, StartChild)
    assert child.subprocess == inner
    assert child.called is None


def test_child_failure_is_an_incident_and_resolving_starts_a_new_child() -> None:
    call = Node(id="c1", kind=NodeKind.CALL, called="billing")
    run = Run.start(build("s>c1 c1>e", nodes=[call]))
    run.send(ChildFailed("c1", 1, "boom"))
    assert run.state.status is InstanceStatus.INCIDENT
    [incident] = run.state.incidents.values()
    assert incident.kind is IncidentKind.CHILD_FAILED
    assert "boom" in incident.reason
    run.send(ResolveIncident(incident.id))
    assert [(c.node_id, c.activation) for c in of_type(run.decisions, StartChild)] == [
        ("c1", 1),
        ("c1", 2),
    ]
    run.send(ChildCompleted("c1", 2, {}))
    assert run.state.status is InstanceStatus.COMPLETED


def test_task_failure_is_an_incident_other_branches_go_on_and_resolve_retries() -> None:
    run = Run.start(build("s>p1 p1>a p1>b a>p2 b>p2 p2>e"))
    step = run.send(TaskFailed("a", 1, "attempts exhausted"))
    [incident] = of_type(step.decisions, OpenIncident)
    assert incident.kind is IncidentKind.TASK_FAILED
    assert run.state.status is InstanceStatus.INCIDENT
    assert run.state.current_activity_ids == ["b", "a"]
    run.complete("b")  # the other branch is not blocked by the incident
    assert run.state.status is InstanceStatus.INCIDENT
    run.send(ResolveIncident(incident.id))
    assert ("a", 2) in run.created()
    assert run.state.status is InstanceStatus.RUNNING
    run.complete("a")
    assert run.state.status is InstanceStatus.COMPLETED


def test_task_failure_cancels_its_boundary_timers() -> None:
    run = boundary_graph(interrupting=True)
    step = run.send(TaskFailed("a", 1, "x"))
    assert CancelTimer("b1/1") in step.decisions
    incident = next(iter(run.state.incidents))
    run.send(ResolveIncident(incident))
    assert [t.key for t in of_type(run.decisions, CreateTimer)] == ["b1/1", "b1/2"]


def test_cancel_cancels_every_open_task_timer_and_child() -> None:
    a = Node(
        id="a",
        kind=NodeKind.TASK,
        name="a",
        activity=task("a").activity,
        boundary=(BoundaryTimer("b1", TimerSpec(duration="P1D")),),
    )
    nodes = [a, timer_node("t1"), Node(id="c1", kind=NodeKind.CALL, called="x")]
    run = Run.start(build("s>p1 p1>a p1>t1 p1>c1 a>e t1>e c1>e b1>e", nodes=nodes))
    step = run.send(Cancel("customer withdrew"))
    assert run.state.status is InstanceStatus.CANCELLED
    assert run.state.tokens == ()
    assert run.state.timers == {}
    assert set(step.decisions) >= {
        CancelTask("a", 1, "customer withdrew"),
        CancelTimer("b1/1"),
        CancelTimer("t1/1"),
        CancelChild("c1", 1, "customer withdrew"),
        InstanceCancelled("customer withdrew"),
    }
    with pytest.raises(EventRejected, match="CANCELLED"):
        run.send(Cancel())


def test_cancel_closes_open_incidents() -> None:
    run = Run.start(build("s>x x>a:false a>e"))
    assert run.state.status is InstanceStatus.INCIDENT
    run.send(Cancel())
    assert run.state.status is InstanceStatus.CANCELLED
    assert run.state.incidents == {}


def test_output_of_a_form_task_becomes_variables() -> None:
    graph = build(
        "s>a a>x x>b:days > 3 x>c b>e c>e",
        nodes=[task("a", form_id="leave")],
        variables=["days", "leave"],
        defaults={"x": "x-c"},
    )
    run = Run.start(graph)
    run.complete("a", {"leave": {"days": 5, "reason": "trip"}})
    assert run.state.variables == {
        "leave": {"days": 5, "reason": "trip"},
        "days": 5,
        "reason": "trip",
    }
    assert run.open_task_ids() == ["b"]
    [done] = run.entries(HistoryKind.STEP_COMPLETED)
    assert done.data == {"written": ["days", "reason", "leave"]}


def test_task_created_decision_is_unique_per_activation() -> None:
    graph = build("s>a a>x x>a:n < 3 x>e", variables=["n"], defaults={"x": "x-e"})
    run = Run.start(graph, {"n": 0})
    for n in range(1, 4):
        run.complete("a", {"n": n})
    keys = [(d.node_id, d.activation) for d in of_type(run.decisions, CreateTask)]
    assert keys == [("a", 1), ("a", 2), ("a", 3)]
    assert len(set(keys)) == len(keys)

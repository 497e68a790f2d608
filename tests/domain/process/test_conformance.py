"""The BPMN conformance set: one file per construct under ``bpmn/``, each with its expected
path and variables. Files Spiff can run without a clock or a correlation setup are also run
through SpiffWorkflow 3.x (the oracle) with the same completion choices, and the two traces
must agree: the ready tasks before every completion, the path, the final variables.

The files are read by the product's BPMN parser and validated as publishing does
(:func:`~.bpmn_support.read_conformance`); Spiff reads the same files with their CEL conditions
spelled as Python. ``tests/acceptance/test_bpmn_conformance_api.py`` drives the same files
through the HTTP API and a worker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processgpt.domain.process.events import (
    ChildCompleted,
    MessageReceived,
    SignalReceived,
    TimerFired,
)
from processgpt.domain.process.model import AgentMode, NodeKind, TaskType
from processgpt.domain.process.state import InstanceStatus
from processgpt.domain.process.step import CreateTask, CreateTimer, StartChild
from tests.domain.process.bpmn_support import (
    ORACLE_CASES,
    outputs,
    read_conformance,
    run_ours,
    run_spiff,
)
from tests.domain.process.builders import T0, Run, of_type


@pytest.mark.parametrize(("name", "variables", "choices", "expected"), ORACLE_CASES)
def test_conformance_against_spiffworkflow(
    name: str, variables: dict[str, Any], choices: tuple[int, ...], expected: list[str]
) -> None:
    xml, graph = read_conformance(name)
    ours = run_ours(graph, variables, outputs, choices)
    theirs = run_spiff(xml, name, variables, outputs, choices)
    assert ours.path == expected
    assert theirs.path == ours.path
    assert theirs.ready == ours.ready
    if expected:
        assert ours.completed and theirs.completed
        assert ours.variables == theirs.variables
        for task in set(expected):
            assert ours.variables[f"{task}_done"] == expected.count(task)
    else:  # no flow holds: Spiff raises, ours opens an incident; neither goes on
        assert ours.error is not None and "no outgoing flow" in ours.error
        assert theirs.error is not None
        assert not ours.completed and not theirs.completed


def test_inclusive_join_in_a_loop_waits_for_the_branch_still_running() -> None:
    """Round 2 of ``nested`` activates both branches again; after a1 and a2 the join must
    wait for b. SpiffWorkflow 3.2 fires it early here (its inclusive join counts an input
    completed in an earlier round as arrived), so this case is checked against the BPMN rule,
    not against the oracle."""
    _, graph = read_conformance("nested")
    ours = run_ours(graph, {"rounds": 0}, outputs)
    assert ours.ready == [
        ["a1", "a2"],
        ["a2"],
        ["count"],
        ["a1", "a2", "b"],
        ["a2", "b"],
        ["b"],  # the join waits for b: count is not ready yet
        ["count"],
        ["b"],
        ["count"],
    ]
    assert ours.completed
    assert ours.variables["count_done"] == 3


def load(name: str) -> Run:
    return Run.start(read_conformance(name)[1])


def test_conformance_intermediate_timer() -> None:
    run = load("timer_intermediate")
    run.complete("order")
    [timer] = of_type(run.decisions, CreateTimer)
    assert timer.node_id == "cooling_off"
    assert timer.due_at == T0 + timedelta(days=14)
    assert run.open_tasks() == []
    run.send(TimerFired(timer.key), later=14 * 86400)
    run.complete("ship")
    assert run.state.status is InstanceStatus.COMPLETED
    assert [c for c, _ in run.created()] == ["order", "ship"]


@pytest.mark.parametrize(
    ("name", "fire", "path"),
    [
        ("boundary_interrupting", False, ["approve", "archive"]),
        ("boundary_interrupting", True, ["approve", "escalate"]),
        ("boundary_non_interrupting", False, ["approve", "archive"]),
        ("boundary_non_interrupting", True, ["approve", "escalate", "archive"]),
    ],
)
def test_conformance_boundary_timers(name: str, fire: bool, path: list[str]) -> None:
    run = load(name)
    [timer] = of_type(run.decisions, CreateTimer)
    assert timer.due_at == T0 + timedelta(hours=4)
    assert timer.boundary_id == "sla"
    if fire:
        run.send(TimerFired(timer.key))
    while run.open_tasks():
        run.complete(run.open_task_ids()[0])
    assert run.state.status is InstanceStatus.COMPLETED
    assert [c for c, _ in run.created()] == path


def test_conformance_message_and_signal_catch() -> None:
    run = load("message_catch")
    graph = run.graph
    assert graph.node("paid").kind is NodeKind.MESSAGE
    assert graph.node("recalled").kind is NodeKind.SIGNAL
    run.send(MessageReceived("payment", {"paid": True}))
    assert run.open_tasks() == []
    run.send(SignalReceived("recall", {"recalled": True}))
    run.complete("ship")
    assert run.state.status is InstanceStatus.COMPLETED
    assert run.state.variables == {"paid": True, "recalled": True}


def test_conformance_call_activity_and_subprocess() -> None:
    run = load("call_and_subprocess")
    [call] = of_type(run.decisions, StartChild)
    assert call.called == "invoice_process"
    run.send(ChildCompleted("billing", 1, {"invoice": 7}))
    sub = of_type(run.decisions, StartChild)[1]
    assert sub.subprocess is not None
    assert [n.id for n in sub.subprocess.nodes] == ["p_start", "pick", "p_end"]
    assert sub.variables == {"invoice": 7}
    # The child runs as an instance of its own: drive it with the same engine.
    child = Run.start(sub.subprocess, sub.variables)
    child.complete("pick", {"packed": True})
    assert child.state.status is InstanceStatus.COMPLETED
    run.send(ChildCompleted("packing", 1, child.state.variables))
    run.complete("ship")
    assert run.state.status is InstanceStatus.COMPLETED
    assert run.state.variables["packed"] is True


def test_conformance_timer_date() -> None:
    run = load("timer_date")
    run.complete("order")
    [timer] = of_type(run.decisions, CreateTimer)
    assert timer.node_id == "not_before"
    assert timer.due_at == datetime(2020, 1, 1, tzinfo=UTC)  # a date in the past: due at once
    run.send(TimerFired(timer.key))
    run.complete("ship")
    assert run.state.status is InstanceStatus.COMPLETED


def test_conformance_lanes_and_task_types() -> None:
    """Lanes are roles (a lane's default user, or the binding given at start); a service
    task with an agent is an agent's step, user and manual tasks are a person's."""
    run = Run.start(read_conformance("lanes_and_task_types")[1], roles={"manager": "kim"})
    seen: dict[str, tuple[str | None, str | None, TaskType, AgentMode, str | None]] = {}
    while run.open_tasks():
        [(node_id, _)] = run.open_tasks()
        created = of_type(run.decisions, CreateTask)[-1]
        activity = created.activity
        seen[node_id] = (
            activity.role,
            created.assignee,
            activity.task_type,
            activity.agent_mode,
            activity.agent,
        )
        run.complete(node_id)
    assert run.state.status is InstanceStatus.COMPLETED
    assert seen == {
        "request": ("clerk", "clerk@example.com", TaskType.USER, AgentMode.NONE, None),
        "check": ("clerk", "clerk@example.com", TaskType.MANUAL, AgentMode.NONE, None),
        "classify": ("clerk", "clerk@example.com", TaskType.SERVICE, AgentMode.NONE, "demo"),
        "approve": ("manager", "kim", TaskType.USER, AgentMode.NONE, None),
    }

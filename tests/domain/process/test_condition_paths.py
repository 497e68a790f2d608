"""Conditions read declared variables with a path (ProcessGPT's conditionData) at run time."""

from __future__ import annotations

from processgpt.domain.process.engine import advance, start
from processgpt.domain.process.events import TaskCompleted
from processgpt.domain.process.model import Variable
from tests.domain.process.builders import T0, build


def test_a_condition_names_a_forms_field_alone() -> None:
    graph = build("s>a a>x x>yes:decision == 'approve' x>no:decision != 'approve' yes>e1 no>e2")
    graph = type(graph)(
        id=graph.id,
        name=graph.name,
        nodes=graph.nodes,
        flows=graph.flows,
        variables=(Variable("decision", path="approval_form.decision"),),
    )
    state = start(graph, now=T0).state  # type: ignore[union-attr]
    step = advance(
        graph, state, TaskCompleted("a", 1, {"approval_form": {"decision": "approve"}}), now=T0
    )
    assert step.state.current_activity_ids == ["yes"]  # type: ignore[union-attr]

"""The engine's parts on their own: output mapping, timers, structure analysis (inclusive
join pairing), the state's JSON, and the conditions module's safety."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from processgpt.domain.process.conditions import ConditionError, compile_condition
from processgpt.domain.process.events import TaskFailed
from processgpt.domain.process.model import (
    Activity,
    BoundaryTimer,
    Node,
    NodeKind,
    TimerSpec,
)
from processgpt.domain.process.outputs import map_output, task_input
from processgpt.domain.process.state import InstanceState
from processgpt.domain.process.structure import (
    immediate_post_dominators,
    inclusive_joins,
    inclusive_problems,
    reachability,
)
from processgpt.domain.process.timers import TimerError, add_duration, due_at, parse_date
from tests.domain.process.builders import Run, build, task

# -- outputs -------------------------------------------------------------------------------


def test_output_without_output_data_writes_every_key() -> None:
    variables, written = map_output(Activity(), {"a": 1, "b": {"c": 2}}, {"a": 0, "z": 9})
    assert variables == {"a": 1, "b": {"c": 2}, "z": 9}
    assert written == ["a", "b"]


def test_output_data_restricts_and_reads_dotted_names() -> None:
    activity = Activity(output_data=("a", "form.days", "missing", "deep.x.y"))
    before = {"form": {"reason": "kept"}, "untouched": 1}
    variables, written = map_output(
        activity,
        {"a": 1, "b": 2, "form": {"days": 3, "other": 4}, "deep": {"x": {"y": 5}}},
        before,
    )
    assert variables == {
        "a": 1,
        "form": {"reason": "kept", "days": 3},
        "deep": {"x": {"y": 5}},
        "untouched": 1,
    }
    assert written == ["a", "form.days", "deep.x.y"]
    assert before == {"form": {"reason": "kept"}, "untouched": 1}  # not mutated


def test_form_fields_become_variables_and_top_level_keys_win() -> None:
    activity = Activity(form_id="leave")
    variables, _ = map_output(activity, {"leave": {"days": 2, "note": "f"}, "note": "top"}, {})
    assert variables == {"leave": {"days": 2, "note": "f"}, "days": 2, "note": "top"}
    only_days = Activity(form_id="leave", output_data=("days",))
    variables, written = map_output(only_days, {"leave": {"days": 2, "note": "f"}}, {})
    assert variables == {"days": 2}
    assert written == ["days"]


def test_form_fields_sent_at_the_top_level_are_the_form() -> None:
    """A person's form submits its fields at the top level: ``form.field`` finds them."""
    dotted = Activity(form_id="leave", output_data=("leave.days", "note"))
    variables, written = map_output(dotted, {"days": 2, "note": "n"}, {"leave": {"x": 1}})
    assert variables == {"leave": {"x": 1, "days": 2}, "note": "n"}
    assert written == ["leave.days", "note"]
    everything, _ = map_output(Activity(form_id="leave"), {"days": 2}, {})
    assert everything == {"days": 2, "leave": {"days": 2}}


def test_task_input_takes_input_data_or_everything() -> None:
    values = {"a": 1, "form": {"days": 3}}
    assert task_input(Activity(input_data=("a", "form.days", "nope")), values) == {
        "a": 1,
        "form.days": 3,
    }
    assert task_input(Activity(), values) == values


# -- timers --------------------------------------------------------------------------------

NOW = datetime(2024, 1, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT15M", NOW + timedelta(minutes=15)),
        ("P2D", NOW + timedelta(days=2)),
        ("P1W", NOW + timedelta(weeks=1)),
        ("PT1.5S", NOW + timedelta(seconds=1.5)),
        ("P1M", datetime(2024, 2, 29, 12, tzinfo=UTC)),
        ("P1Y1M1DT1H", datetime(2025, 3, 1, 13, tzinfo=UTC)),
    ],
)
def test_durations(text: str, expected: datetime) -> None:
    assert add_duration(NOW, text) == expected


@pytest.mark.parametrize("text", ["P", "PT", "P1DT", "R3/PT1H", "-P1D", "1 day", "PT1H "])
def test_bad_durations_are_refused(text: str) -> None:
    if text == "PT1H ":  # surrounding spaces are tolerated
        assert add_duration(NOW, text) == NOW + timedelta(hours=1)
        return
    with pytest.raises(TimerError):
        add_duration(NOW, text)


def test_dates_and_specs() -> None:
    assert parse_date("2030-01-01") == datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_date("2030-01-01T09:00:00+02:00").utcoffset() == timedelta(hours=2)
    with pytest.raises(TimerError):
        parse_date("tomorrow")
    with pytest.raises(TimerError):
        due_at(TimerSpec(), NOW)
    with pytest.raises(TimerError):
        due_at(TimerSpec(duration="PT1M", date="2030-01-01"), NOW)


# -- structure -----------------------------------------------------------------------------


def test_reachability_and_post_dominators() -> None:
    graph = build("s>x x>a x>b a>j b>j j>e")
    reach = reachability(graph)
    assert reach["a"] == {"j", "e"}
    assert "x" not in reach["x"]
    loop = build("s>a a>x x>a x>e")
    assert "a" in reachability(loop)["a"]
    ipdom = immediate_post_dominators(graph)
    assert ipdom["x"] == "j"
    assert ipdom["a"] == "j"
    assert ipdom["e"] is None


def test_inclusive_split_is_closed_by_its_post_dominating_join() -> None:
    graph = build("s>i1 i1>a i1>b a>i2 b>i2 i2>e")
    assert inclusive_joins(graph) == {"i1": "i2"}
    assert inclusive_problems(graph) == []


def test_inclusive_split_whose_branches_never_meet_has_no_join() -> None:
    graph = build("s>i1 i1>a i1>b a>e b>e2")
    assert inclusive_joins(graph) == {}
    assert inclusive_problems(graph) == []


def test_ambiguous_inclusive_pairings_are_refused() -> None:
    closed_by_parallel = build("s>i1 i1>a i1>b a>p2 b>p2 p2>e")
    [problem] = inclusive_problems(closed_by_parallel)
    assert problem.element_id == "i1"
    assert "parallel" in problem.message
    outside = build("s>x x>i1 x>c i1>a i1>b a>i2 b>i2 c>i2 i2>e")
    problems = inclusive_problems(outside)
    assert [p.element_id for p in problems] == ["i2"]
    assert "outside" in problems[0].message
    shared = build("s>i1 i1>i3 i1>c i3>a i3>b a>i2 b>i2 c>i2 i2>e")
    problems = inclusive_problems(shared)
    assert [p.element_id for p in problems] == ["i2"]
    assert "several splits" in problems[0].message
    loop_inside = build("s>xm xm>i1 i1>a i1>b a>xm b>i2 a>i2 i2>e")
    assert any("inside its own block" in p.message for p in inclusive_problems(loop_inside))


def test_boundary_timers_count_as_edges() -> None:
    a = Node(
        id="a",
        kind=NodeKind.TASK,
        activity=Activity(),
        boundary=(BoundaryTimer("b1", TimerSpec(duration="PT1M")),),
    )
    graph = build("s>i1 i1>a i1>c a>i2 b1>z c>i2 i2>e z>e", nodes=[a])
    # The boundary path escapes to e without passing i2: i2 does not post-dominate i1.
    assert inclusive_joins(graph) == {}


# -- state ---------------------------------------------------------------------------------


def test_state_round_trips_through_json_with_every_kind_of_token() -> None:
    a = Node(
        id="a",
        kind=NodeKind.TASK,
        activity=Activity(),
        boundary=(BoundaryTimer("b1", TimerSpec(duration="PT1M")),),
    )
    t1 = Node(id="t1", kind=NodeKind.TIMER, timer=TimerSpec(duration="PT1M"))
    graph = build(
        "s>i1 i1>p1:true i1>c:true p1>a p1>t1 a>p2 t1>p2 p2>i2 c>i2 i2>e b1>c2 c2>i2",
        nodes=[a, t1, task("c")],
    )
    run = Run.start(graph, {"nested": {"list": [1, 2.5, None, "x"]}}, roles={"r": "u"})
    run.complete("c")
    run.send(TaskFailed("a", 1, "x"))
    state = run.state
    assert state.incidents and state.timers and any(t.scope for t in state.tokens)
    encoded = json.dumps(state.to_json())
    assert InstanceState.from_json(json.loads(encoded)) == state


def test_empty_state_round_trips() -> None:
    assert InstanceState.from_json(InstanceState().to_json()) == InstanceState()


# -- conditions (the stand-in's safety contract) -------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "amount.__class__",
        "open('/etc/passwd')",
        "exec('1')",
        "amount > ",
    ],
)
def test_conditions_that_try_to_reach_python_are_refused(text: str) -> None:
    with pytest.raises(ConditionError):
        compile_condition(text, ["amount"]).evaluate({"amount": 1})


def test_conditions_evaluate_to_booleans_only() -> None:
    assert compile_condition("amount > 1", ["amount"]).evaluate({"amount": 2}) is True
    with pytest.raises(ConditionError, match="not a boolean"):
        compile_condition("amount + 1", ["amount"]).evaluate({"amount": 2})
    with pytest.raises(ConditionError, match="not a declared process variable"):
        compile_condition("other > 1", ["amount"])

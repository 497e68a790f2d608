"""Engine events stored with judge tasks, and reading a judge's verdicts."""

from __future__ import annotations

import pytest

from processgpt.domain.process.events import (
    Cancel,
    ChildCompleted,
    ChildFailed,
    MessageReceived,
    ResolveIncident,
    SignalReceived,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)
from processgpt.domain.process.step import Question, Verdict
from processgpt.domain.process.step_events import (
    BadVerdicts,
    MigrateTo,
    StartInstance,
    event_from_json,
    event_to_json,
    judge_input,
    judge_query,
    parse_verdicts,
    verdicts_from_json,
    verdicts_to_json,
)


@pytest.mark.parametrize(
    "event",
    [
        StartInstance(),
        StartInstance("s2"),
        MigrateTo(3, {"a": "b"}),
        TaskCompleted("a", 2, {"x": [1, {"y": None}]}),
        TaskFailed("a", 1, "boom"),
        ChildCompleted("c", 1, {"v": 1}),
        ChildFailed("c", 1, "child failed"),
        TimerFired("late/1"),
        MessageReceived("paid", {"amount": 3}),
        SignalReceived("stop", {}),
        ResolveIncident("i1", {"amount": 5}),
        Cancel("why"),
    ],
)
def test_events_round_trip(event: object) -> None:
    assert event_from_json(event_to_json(event)) == event  # type: ignore[arg-type]


def test_unknown_stored_event_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        event_from_json({"type": "explode"})


def test_verdicts_round_trip() -> None:
    verdicts = {"f1": Verdict(True, "because"), "f2": Verdict(False)}
    assert verdicts_from_json(verdicts_to_json(verdicts)) == verdicts


@pytest.mark.parametrize(
    "output",
    [
        {"verdicts": {"f1": {"holds": True, "reasoning": "yes"}, "f2": {"holds": False}}},
        {
            "text": 'Sure.\n```json\n{"verdicts": {"f1": {"holds": true, "reasoning": "yes"},'
            ' "f2": {"holds": "false"}}}\n```'
        },
        '{"verdicts": {"f1": {"holds": "TRUE", "reasoning": "yes"}, "f2": false}}',
        {
            "result": {
                "answer": {
                    "verdicts": {"f1": {"holds": True, "reasoning": "yes"}, "f2": {"holds": False}}
                }
            }
        },
    ],
)
def test_verdicts_are_read_from_the_shapes_agents_answer_in(output: object) -> None:
    verdicts = parse_verdicts(output, ["f1", "f2"])
    assert verdicts["f1"].holds is True and verdicts["f2"].holds is False
    assert verdicts["f1"].reasoning == "yes"


@pytest.mark.parametrize(
    "output",
    [
        None,
        "no json here",
        {"text": "{not json}"},
        {"verdicts": {"f1": {"holds": True}}},  # f2 missing
        {"verdicts": {"f1": {"holds": "maybe"}, "f2": {"holds": True}}},
        {"verdicts": ["f1", "f2"]},
    ],
)
def test_bad_judge_output_is_refused(output: object) -> None:
    with pytest.raises(BadVerdicts):
        parse_verdicts(output, ["f1", "f2"])


def test_the_judge_is_asked_every_question_on_the_variables() -> None:
    questions = (Question("f1", "x", "the customer is angry", "t1"),)
    assert "f1" in judge_query(questions) and "the customer is angry" in judge_query(questions)
    assert judge_input(questions, {"mood": "bad"}) == {
        "questions": [{"flow_id": "f1", "gateway_id": "x", "condition": "the customer is angry"}],
        "variables": {"mood": "bad"},
    }

"""How an attempt ends, decided without a database."""

from __future__ import annotations

import json
import logging
import random
import uuid
from typing import Any

import pytest

from processgpt.domain.errors import ExecutorReturnedWithoutResult, InvalidInput, RetryLater
from processgpt.domain.task import RetryPolicy, TaskStatus
from processgpt.runtime.attempt import (
    MAX_ERROR_CHARS,
    AttemptEnd,
    Outcome,
    RunResult,
    StopReason,
    end_of_attempt,
    failure_event,
)

TASK = uuid.UUID("01900000-0000-7000-8000-000000000001")
POLICY = RetryPolicy(base_delay=2.0, max_delay=60.0, jitter=0.5)


def decide(attempt: int = 1, max_attempts: int = 3, **given: Any) -> AttemptEnd:
    return end_of_attempt(TASK, attempt, max_attempts, retry=POLICY, **given)


def events(end: AttemptEnd) -> list[tuple[str, str, str | None, Any]]:
    """The end's events as (event_type, job_id, crew_type, decoded data)."""
    return [(r.event_type, r.job_id, r.crew_type, json.loads(data)) for r, data in end.events]


def test_a_completed_run_ends_done_with_its_result_and_crew_completed() -> None:
    end = decide(result=RunResult(Outcome.COMPLETED, {"answer": 42}))
    assert end.status is TaskStatus.DONE and end.stat == "done"
    assert json.loads(end.output_json or "") == {"answer": 42}
    assert events(end) == [("crew_completed", "CREW_FINISHED", "crew", {"status": "completed"})]
    assert end.error is None and end.retry_delay is None and end.attempts is None
    assert end.note == (logging.INFO, "task done task=%s attempt=%d", (TASK, 1))


def test_a_completed_run_without_a_result_stores_none() -> None:
    end = decide(result=RunResult(Outcome.COMPLETED))
    assert end.status is TaskStatus.DONE and end.output_json is None


def test_a_result_that_cannot_be_stored_fails_the_task_without_retrying() -> None:
    end = decide(result=RunResult(Outcome.COMPLETED, {"x": float("nan")}))
    assert end.status is TaskStatus.FAILED and end.stat == "failed"
    assert end.output_json is None
    assert end.error is not None and end.error["code"] == "invalid_input"
    assert end.error["message"].startswith("the result cannot be stored: ")
    assert events(end) == [("error", "TASK_ERROR", "agent", {**end.error, "retrying": False})]
    assert end.note is not None and end.note[0] == logging.WARNING


def test_input_required_writes_no_event() -> None:
    end = decide(result=RunResult(Outcome.INPUT_REQUIRED))
    assert (end.status, end.stat, end.events) == (TaskStatus.INPUT_REQUIRED, "input_required", ())


@pytest.mark.parametrize(
    ("message", "reason"), [("user left", "user left"), (None, "agent cancelled")]
)
def test_an_agent_that_cancels_itself_cancels_the_task(message: str | None, reason: str) -> None:
    end = decide(result=RunResult(Outcome.CANCELLED, message=message))
    assert (end.status, end.stat) == (TaskStatus.CANCELLED, "cancelled")
    assert events(end) == [("task_cancelled", "TASK_CANCELLED", "agent", {"reason": reason})]


def test_an_agent_that_reports_failure_fails_the_task_at_once() -> None:
    end = decide(attempt=1, max_attempts=5, result=RunResult(Outcome.FAILED, message="no data"))
    error = {"code": "agent_failed", "message": "no data", "attempt": 1}
    assert (end.status, end.stat, end.error) == (TaskStatus.FAILED, "failed", error)
    assert events(end) == [("error", "TASK_ERROR", "agent", {**error, "retrying": False})]
    assert end.retry_delay is None
    assert not end.dead_letter


def test_an_error_with_attempts_left_is_retried_after_the_policy_delay() -> None:
    end = decide(attempt=2, max_attempts=3, error=RuntimeError("boom"), rng=random.Random(7))
    expected_delay = POLICY.delay(2, random.Random(7))
    assert 2.0 <= expected_delay <= 4.0  # attempt 2: within [base·2·(1-jitter), base·2]
    error = {"code": "executor_error", "message": "RuntimeError: boom", "attempt": 2}
    assert (end.status, end.stat, end.error) == (TaskStatus.PENDING, "retried", error)
    assert end.retry_delay == expected_delay
    data = {**error, "retrying": True, "retry_in_seconds": round(expected_delay, 3)}
    assert events(end) == [("error", "TASK_ERROR", "agent", data)]
    assert end.attempts is None  # the attempt counts


def test_retry_later_chooses_its_own_delay_and_code() -> None:
    end = decide(error=RetryLater("rate limited", delay=12.5))
    assert end.status is TaskStatus.PENDING and end.retry_delay == 12.5
    assert end.error is not None and end.error["code"] == RetryLater.code


def test_the_last_attempt_fails_the_task() -> None:
    end = decide(attempt=3, max_attempts=3, error=RuntimeError("boom"))
    assert (end.status, end.stat, end.retry_delay) == (TaskStatus.FAILED, "failed", None)
    assert events(end)[0][3]["retrying"] is False
    assert end.dead_letter  # it ran out of attempts


@pytest.mark.parametrize(
    "error", [InvalidInput("bad field"), ExecutorReturnedWithoutResult("nothing")]
)
def test_errors_a_new_attempt_cannot_fix_fail_at_once(error: Exception) -> None:
    end = decide(attempt=1, max_attempts=10, error=error)
    assert end.status is TaskStatus.FAILED
    assert not end.dead_letter  # failed at once: not for want of attempts
    assert end.error is not None and end.error["code"] == getattr(error, "code", None)


def test_a_long_error_message_is_cut() -> None:
    end = decide(error=RuntimeError("x" * 10_000))
    assert end.error is not None and len(end.error["message"]) == MAX_ERROR_CHARS


def test_a_run_stopped_for_shutdown_is_handed_back_without_counting_the_attempt() -> None:
    # The stop decides, whatever the run did meanwhile.
    for given in ({}, {"error": RuntimeError("x")}, {"result": RunResult(Outcome.COMPLETED)}):
        end = decide(attempt=2, stopped=StopReason.SHUTDOWN, **given)
        assert (end.status, end.stat) == (TaskStatus.PENDING, "handed_back")
        assert (end.retry_delay, end.attempts) == (0.0, 1)
        assert events(end) == [
            ("task_requeued", "TASK_REQUEUED", "agent", {"reason": "shutdown", "attempt": 2})
        ]


@pytest.mark.parametrize(
    ("reason", "stat"), [(StopReason.CANCELLED, "cancelled"), (StopReason.LEASE_LOST, "lease_lost")]
)
def test_a_run_stopped_by_someone_else_writes_nothing(reason: StopReason, stat: str) -> None:
    end = decide(stopped=reason, result=RunResult(Outcome.COMPLETED, "late"))
    assert (end.status, end.stat, end.events, end.output_json) == (None, stat, (), None)


def test_an_attempt_needs_to_know_what_came_of_the_run() -> None:
    with pytest.raises(ValueError, match="result"):
        decide()


def test_every_failure_event_has_the_same_shape() -> None:
    record, data = failure_event({"code": "storage_error", "message": "m"})
    assert (record.event_type, record.job_id, record.crew_type) == ("error", "TASK_ERROR", "agent")
    assert json.loads(data) == {"code": "storage_error", "message": "m", "retrying": False}

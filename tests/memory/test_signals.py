"""Implicit feedback: a task that failed, was re-queued, or whose draft a person changed
before completing it is recorded (with what changed) in the learning step's queue; the changed
draft waits for the learning step (pending), the others are recorded only (done)."""

from __future__ import annotations

from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository


async def _signals(db: Database, task_id: object) -> list[dict[str, object]]:
    rows = await db.fetch(
        "SELECT signal, diff, status FROM memory_feedback WHERE task_id = $1 ORDER BY created_at",
        task_id,
    )
    return [dict(r) for r in rows]


async def test_a_draft_changed_by_a_person_is_recorded_with_its_diff(db: Database) -> None:
    task_id = await db.fetchval(
        """INSERT INTO todolist (tenant_id, agent_orch, status, activity_id, draft)
           VALUES ('default', 'llm', 'TODO', 'review', '{"title": "Q3", "body": "draft"}')
           RETURNING id"""
    )
    await db.execute(
        """UPDATE todolist SET status = 'DONE', finished_at = now(),
                  output = '{"title": "Q3", "body": "rewritten by a person"}'
           WHERE id = $1""",
        task_id,
    )
    (signal,) = await _signals(db, task_id)
    assert signal["signal"] == "draft_changed" and signal["status"] == "pending"
    diff = signal["diff"]
    assert isinstance(diff, dict) and diff["changed_fields"] == ["body"]
    assert diff["draft"]["body"] == "draft" and diff["output"]["body"] == "rewritten by a person"

    same = await db.fetchval(
        """INSERT INTO todolist (tenant_id, agent_orch, status, draft)
           VALUES ('default', 'llm', 'TODO', '{"a": 1}') RETURNING id"""
    )
    await db.execute(
        "UPDATE todolist SET status = 'DONE', finished_at = now(), output = draft WHERE id = $1",
        same,
    )
    assert await _signals(db, same) == []  # accepted as drafted: no signal


async def test_failed_and_requeued_tasks_are_recorded(db: Database, repo: TaskRepository) -> None:
    task_id = await db.fetchval(
        """INSERT INTO todolist (tenant_id, agent_orch, status, finished_at, error)
           VALUES ('default', 'llm', 'PENDING', NULL, NULL) RETURNING id"""
    )
    await db.execute(
        """UPDATE todolist SET status = 'FAILED', finished_at = now(),
                  error = '{"code": "agent_failed", "message": "boom"}' WHERE id = $1""",
        task_id,
    )
    await repo.requeue("default", task_id)
    signals = await _signals(db, task_id)
    assert [s["signal"] for s in signals] == ["failed", "requeued"]
    assert signals[0]["diff"] == {"error": {"code": "agent_failed", "message": "boom"}}
    assert signals[1]["diff"]["previous_status"] == "FAILED"

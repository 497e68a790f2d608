"""Gathering steps of one instance: a timer armed and dropped within one batch is never
written."""

from __future__ import annotations

import json
import uuid
from typing import Any

from processgpt.db.step_batch import StepBatch
from processgpt.domain.process.state import InstanceState


class _Conn:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def fetch(self, _query: str, steps: str) -> list[Any]:
        self.sent.append(json.loads(steps))
        return []


async def test_steps_of_one_instance_merge_in_order() -> None:
    batch = StepBatch()
    inst = uuid.uuid4()
    first, second = InstanceState(variables={"a": 1}), InstanceState(variables={"a": 2})
    timer = {"key": "t/1", "due_at": "2030-01-01T00:00:00+00:00"}
    batch.add(
        inst, state=first, history=[{"kind": "x"}], tasks=[{"n": 1}], timers=[timer], drops=["old"]
    )
    batch.add(
        inst, state=second, history=[{"kind": "y"}], tasks=[{"n": 2}], timers=[], drops=["t/1"]
    )
    assert batch.holds(inst)
    conn = _Conn()
    await batch.flush(conn)
    [[step]] = conn.sent
    assert step["state"]["variables"] == {"a": 2}
    assert [h["kind"] for h in step["history"]] == ["x", "y"]
    assert step["tasks"] == [{"n": 1}, {"n": 2}]
    assert step["timers"] == [] and step["drops"] == ["old"]
    assert not batch.holds(inst)
    await batch.flush(conn)
    assert len(conn.sent) == 1  # nothing left to write

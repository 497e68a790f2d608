"""Steps of many instances written in one statement (a worker's batch).

A worker's batch can end dozens of process tasks; applying each step with its own statement
would cost a round trip per step while the batch's transaction holds its locks. The plain
steps of a batch (work items created, timers armed or dropped, history, the new state: what
an agent step's completion usually causes) are gathered here per instance, several steps of
one instance merged in order, and written by one ``apply_steps`` statement at the end of the
transaction (or earlier, before a step of the same instance that must be applied at once).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from processgpt.db.process_states import RowVersion, StateCache
from processgpt.db.sql import QUERIES
from processgpt.domain.events import encode_json
from processgpt.domain.process.state import InstanceState


@dataclass
class _Pending:
    state: InstanceState | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)


class StepBatch:
    """Plain steps waiting to be written, by instance, in the order they were taken."""

    def __init__(self, states: StateCache | None = None) -> None:
        self._pending: dict[uuid.UUID, _Pending] = {}
        self._states = states
        """Set: each state written is kept there with its row's new version, for the next
        step."""

    def add(
        self,
        instance_id: uuid.UUID,
        *,
        state: InstanceState,
        history: list[dict[str, Any]],
        tasks: list[dict[str, Any]],
        timers: list[dict[str, Any]],
        drops: list[str],
    ) -> None:
        """A step of ``instance_id`` with no cancellation, child or version change."""
        pending = self._pending.setdefault(instance_id, _Pending())
        pending.state = state
        pending.history += history
        pending.tasks += tasks
        if drops:
            # A timer armed by an earlier step of this batch is not in the table yet:
            # dropping it means not arming it.
            armed_here = {t["key"] for t in pending.timers}
            dropped_here = {k for k in drops if k in armed_here}
            if dropped_here:
                pending.timers = [t for t in pending.timers if t["key"] not in dropped_here]
            pending.drops += [k for k in drops if k not in dropped_here]
        pending.timers += timers

    def holds(self, instance_id: uuid.UUID) -> bool:
        return instance_id in self._pending

    async def flush(self, conn: Any, instance_id: uuid.UUID | None = None) -> None:
        """Write what waits (for one instance, or all) in one statement."""
        if instance_id is None:
            taken, self._pending = self._pending, {}
        else:
            one = self._pending.pop(instance_id, None)
            taken = {} if one is None else {instance_id: one}
        if not taken:
            return
        steps = []
        for inst_id, p in taken.items():
            assert p.state is not None
            steps.append(
                {
                    "id": str(inst_id),
                    "state": p.state.to_json(),
                    "status": p.state.status.value,
                    "current": p.state.current_activity_ids,
                    "history": p.history,
                    "tasks": p.tasks,
                    "timers": p.timers,
                    "drops": p.drops,
                }
            )
        # orjson: the payload is ~1 KB per step and json's encoder took a fifth of a step's
        # Python time. Everything in it is JSON the database or encode_json accepted before
        # (stored states, outputs encoded by the task's end), so orjson's one laxity, NaN
        # written as null, cannot arise here.
        try:
            payload = orjson.dumps(steps).decode()
        except TypeError:  # an integer beyond 64 bits: json's encoder takes any
            payload = encode_json(steps)
        rows = await conn.fetch(QUERIES["apply_steps"], payload)
        if self._states is not None:
            for row in rows:
                inst_id = row["proc_inst_id"]
                state = taken[inst_id].state
                assert state is not None
                self._states.put(inst_id, RowVersion(row["xmin"], row["history_seq"]), state)

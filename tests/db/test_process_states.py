"""The worker's cache of decoded instance states: a state is reused only when the row is at
the version it was kept for (the writing transaction's id and the history_seq)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from processgpt.db.database import Database
from processgpt.db.process_graphs import GraphCache
from processgpt.db.process_states import RowVersion, StateCache
from processgpt.db.process_steps import StepRun, StepSettings
from processgpt.db.process_task_ends import EndedTask, task_ended
from processgpt.db.step_batch import StepBatch
from processgpt.domain.process.events import Cancel
from processgpt.domain.process.state import InstanceState, InstanceStatus
from processgpt.runtime.process_service import ProcessService
from tests.domain.process.builders import build
from tests.runtime.process_support import agent_task, publish, tasks_of

# -- the cache alone ----------------------------------------------------------------------


def _text(state: InstanceState) -> str:
    """The state as lock_instances returns it: JSON text."""
    return json.dumps(state.to_json())


def test_the_kept_version_reuses_the_kept_state_without_reading_the_json() -> None:
    cache, inst = StateCache(), uuid.uuid4()
    state = InstanceState(variables={"amount": 120})
    cache.put(inst, RowVersion(700, 3), state)
    assert cache.get(inst, RowVersion(700, 3), "not even JSON") is state


@pytest.mark.parametrize("version", [RowVersion(701, 3), RowVersion(700, 4), None])
def test_another_version_builds_the_state_from_the_row(version: RowVersion | None) -> None:
    cache, inst = StateCache(), uuid.uuid4()
    written = InstanceState(variables={"amount": 120})
    cache.put(inst, RowVersion(700, 3), written)
    # The row holds something else: another writer changed it, or our write rolled back.
    stored = InstanceState(variables={"amount": 99}, serial=4)
    got = cache.get(inst, version, _text(stored))
    assert got is not written and got == stored
    assert cache.get(inst, version, stored.to_json()) == stored  # decoded JSON is read too
    if version is not None:
        assert cache.get(inst, version, "unread") is got  # kept from now on


def test_an_instance_id_never_serves_another_instance() -> None:
    cache = StateCache()
    state = InstanceState(variables={"x": 1})
    cache.put(uuid.uuid4(), RowVersion(1, 1), state)
    assert cache.get(uuid.uuid4(), RowVersion(1, 1), _text(state)) is not state


def test_a_forgotten_instance_is_read_again() -> None:
    cache, inst = StateCache(), uuid.uuid4()
    state = InstanceState(variables={"x": 1})
    cache.put(inst, RowVersion(1, 1), state)
    cache.forget(inst)
    assert cache.get(inst, RowVersion(1, 1), _text(state)) is not state


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = StateCache(size=2)
    ids = [uuid.uuid4() for _ in range(3)]
    states = [InstanceState(serial=n) for n in range(3)]
    versions = [RowVersion(10 + n, n) for n in range(3)]
    cache.put(ids[0], versions[0], states[0])
    cache.put(ids[1], versions[1], states[1])
    assert cache.get(ids[0], versions[0], "") is states[0]  # ids[0] now most recent
    cache.put(ids[2], versions[2], states[2])
    assert len(cache) == 2
    assert cache.get(ids[0], versions[0], "") is states[0]
    assert cache.get(ids[1], versions[1], _text(states[1])) is not states[1]  # was evicted


# -- with the database: what a worker's batches see ---------------------------------------


class _Steps:
    """Transactions as a worker's batch runs them, with one cache across them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.graphs = GraphCache()
        self.states = StateCache()

    def run(self, conn: Any) -> StepRun:
        run = StepRun(conn, self.graphs, StepSettings(), states=self.states)
        run.batch = StepBatch(self.states)
        return run

    async def locked_state(self, instance_id: uuid.UUID) -> InstanceState:
        async with self.db.transaction() as conn:
            run = self.run(conn)
            await run.lock([instance_id])
            state = run.locked[instance_id].state
        assert state is not None
        return state


async def _started(db: Database) -> tuple[uuid.UUID, dict[str, Any]]:
    graph = build("s>a a>b b>e", nodes=[agent_task("a"), agent_task("b")], gid="cached")
    await publish(db, graph)
    inst, _ = await ProcessService(db).start("default", "cached")
    [task] = await tasks_of(db, inst.id)
    return inst.id, task


def _ended(task: dict[str, Any]) -> EndedTask:
    return EndedTask(
        task["id"], task["proc_inst_id"], task["activity_id"], task["activation"], None, True, {}
    )


async def _stored(db: Database, instance_id: uuid.UUID) -> InstanceState:
    raw = await db.fetchval("SELECT state FROM bpm_proc_inst WHERE proc_inst_id = $1", instance_id)
    return InstanceState.from_json(raw)


async def test_a_state_written_by_a_batch_serves_the_next_batch(db: Database) -> None:
    instance_id, task = await _started(db)
    steps = _Steps(db)
    async with db.transaction() as conn:
        run = steps.run(conn)
        await run.lock([instance_id])
        assert (await task_ended(run, _ended(task))).applied
        await run.flush()
        written = run.locked[instance_id].state
    assert await steps.locked_state(instance_id) is written
    assert written == await _stored(db, instance_id)


async def test_a_write_by_another_transaction_is_read_from_the_row(db: Database) -> None:
    instance_id, task = await _started(db)
    steps = _Steps(db)
    async with db.transaction() as conn:
        run = steps.run(conn)
        await run.lock([instance_id])
        await task_ended(run, _ended(task))
        await run.flush()
        written = run.locked[instance_id].state
    await ProcessService(db).cancel("default", instance_id, "changed elsewhere")
    state = await steps.locked_state(instance_id)
    assert state is not written
    assert state.status is InstanceStatus.CANCELLED
    assert state == await _stored(db, instance_id)


async def test_a_batch_rolled_back_leaves_nothing_to_reuse(db: Database) -> None:
    instance_id, task = await _started(db)
    steps = _Steps(db)
    before = await steps.locked_state(instance_id)  # read, and kept at the row's version
    assert await steps.locked_state(instance_id) is before

    class _Abort(Exception):
        pass

    with pytest.raises(_Abort):
        async with db.transaction() as conn:
            run = steps.run(conn)
            await run.lock([instance_id])
            await task_ended(run, _ended(task))
            await run.flush()
            raise _Abort
    state = await steps.locked_state(instance_id)
    assert state.current_activity_ids == ["a"]
    assert state == before == await _stored(db, instance_id)


async def test_a_row_written_again_in_the_same_transaction_is_not_served_stale(
    db: Database,
) -> None:
    instance_id, task = await _started(db)
    steps = _Steps(db)
    async with db.transaction() as conn:
        run = steps.run(conn)
        await run.lock([instance_id])
        await task_ended(run, _ended(task))
        await run.flush()  # kept at this transaction's version
        # A step that is not gathered (a cancellation) writes the row again, same xmin.
        assert (await run.run(instance_id, Cancel("then cancelled"))).applied
        await run.flush()
    state = await steps.locked_state(instance_id)
    assert state.status is InstanceStatus.CANCELLED
    assert state == await _stored(db, instance_id)

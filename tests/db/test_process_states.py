"""The worker's cache of decoded instance states: a state is reused only for the exact JSON it
was kept with."""

from __future__ import annotations

import json
import uuid

from processgpt.db.process_states import StateCache
from processgpt.domain.process.state import InstanceState


def _json(state: InstanceState) -> dict[str, object]:
    """The state as it comes back from the database: encoded, then decoded."""
    decoded: dict[str, object] = json.loads(json.dumps(state.to_json()))
    return decoded


def test_the_same_json_reuses_the_kept_state() -> None:
    cache, inst = StateCache(), uuid.uuid4()
    state = InstanceState(variables={"amount": 120, "when": "2030-01-01T00:00:00+00:00"})
    cache.put(inst, state.to_json(), state)
    assert cache.get(inst, _json(state)) is state


def test_other_json_builds_the_state_again() -> None:
    cache, inst = StateCache(), uuid.uuid4()
    written = InstanceState(variables={"amount": 120})
    cache.put(inst, written.to_json(), written)
    # The row holds something else: another writer changed it, or our write rolled back.
    stored = InstanceState(variables={"amount": 99}, serial=4)
    got = cache.get(inst, _json(stored))
    assert got is not written
    assert got == stored
    assert cache.get(inst, _json(stored)) is got  # kept from now on


def test_an_instance_id_never_serves_another_instance() -> None:
    cache = StateCache()
    state = InstanceState(variables={"x": 1})
    cache.put(uuid.uuid4(), state.to_json(), state)
    assert cache.get(uuid.uuid4(), _json(state)) is not state


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = StateCache(size=2)
    ids = [uuid.uuid4() for _ in range(3)]
    states = [InstanceState(serial=n) for n in range(3)]
    cache.put(ids[0], states[0].to_json(), states[0])
    cache.put(ids[1], states[1].to_json(), states[1])
    assert cache.get(ids[0], _json(states[0])) is states[0]  # ids[0] now most recent
    cache.put(ids[2], states[2].to_json(), states[2])
    assert len(cache) == 2
    assert cache.get(ids[0], _json(states[0])) is states[0]
    assert cache.get(ids[1], _json(states[1])) is not states[1]  # was evicted

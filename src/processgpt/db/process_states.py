"""Decoded instance states kept between transactions, keyed by the JSON they were read from.

A worker locks an instance, reads its ``state`` (JSON) and builds the engine's
:class:`~processgpt.domain.process.state.InstanceState` from it, once per step; for a process
of agent steps that is the same instance every few milliseconds, and building the state cost
as much as the engine's step itself. The cache keeps, per instance, the JSON a state was
last written as (or read from) and the state built from it. A row read later reuses the
state only when its JSON equals the kept JSON (a deep comparison of the decoded values), so
the cache needs no version and cannot serve a stale state: a change by anyone, or a write of
ours that was rolled back, makes the JSON differ and the state is built again.
``InstanceState`` is immutable, so one object may serve many transactions.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from processgpt.domain.process.state import InstanceState


class StateCache:
    """At most ``size`` instances' (JSON, state) pairs; least recently used leave first."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._states: OrderedDict[uuid.UUID, tuple[Mapping[str, Any], InstanceState]] = (
            OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._states)

    def get(self, instance_id: uuid.UUID, raw: Mapping[str, Any]) -> InstanceState:
        """The state of ``raw`` (the instance's stored JSON, decoded): the kept one when
        ``raw`` equals the JSON it was kept with, else built from ``raw`` and kept."""
        kept = self._states.get(instance_id)
        if kept is not None and kept[0] == raw:
            self._states.move_to_end(instance_id)
            return kept[1]
        state = InstanceState.from_json(raw)
        self.put(instance_id, raw, state)
        return state

    def put(self, instance_id: uuid.UUID, raw: Mapping[str, Any], state: InstanceState) -> None:
        """Keep ``state`` as the one ``raw`` (its JSON form) stands for."""
        self._states[instance_id] = (raw, state)
        self._states.move_to_end(instance_id)
        while len(self._states) > self._size:
            self._states.popitem(last=False)

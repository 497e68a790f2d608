"""Decoded instance states kept between transactions, keyed by the row version they were
written as.

A worker locks an instance, reads its ``state`` (JSON) and builds the engine's
:class:`~processgpt.domain.process.state.InstanceState` from it, once per step; for a process
of agent steps that is the same instance every few milliseconds, and decoding and building
the state cost as much as the engine's step itself. The cache keeps, per instance, the state
a worker's batch wrote last and the version of the row that holds it: :class:`RowVersion`,
the writing transaction's id (the row's ``xmin``) with the instance's ``history_seq``. A row
locked later reuses the state only when its version is the kept one; its JSON is then not
even decoded (``lock_instances`` returns it as text).

Why a stale state cannot be served: a row's ``xmin`` changes with every write of the row, by
anyone, and a transaction id is never reused by another transaction (a 32-bit id comes back
only after some four billion transactions, and then ``history_seq``, which every step moves
on, must match too). A write of ours that was rolled back leaves the row at its older version,
so the kept entry never matches. The one writer that could leave the row at the kept version
with another state is the same transaction writing the row again: whoever writes a state
without keeping it must :meth:`StateCache.forget` the instance (see
:mod:`processgpt.db.process_steps`). ``InstanceState`` is immutable, so one object may serve
many transactions.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

from processgpt.domain.events import decode_json
from processgpt.domain.process.state import InstanceState


class RowVersion(NamedTuple):
    """The version of a ``bpm_proc_inst`` row: the id of the transaction that wrote it
    (``xmin``, as a number) and its ``history_seq``."""

    xmin: int
    history_seq: int


class StateCache:
    """At most ``size`` instances' (version, state) pairs; least recently used leave first."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._states: OrderedDict[uuid.UUID, tuple[RowVersion, InstanceState]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(
        self, instance_id: uuid.UUID, version: RowVersion | None, raw: str | Mapping[str, Any]
    ) -> InstanceState:
        """The state of the row at ``version`` whose stored JSON is ``raw`` (text, or already
        decoded): the kept one when the version is the kept one, else built from ``raw`` (and
        kept, when the version is known)."""
        kept = self._states.get(instance_id)
        if kept is not None and version is not None and kept[0] == version:
            self._states.move_to_end(instance_id)
            return kept[1]
        state = InstanceState.from_json(decode_json(raw) if isinstance(raw, str) else raw)
        if version is not None:
            self.put(instance_id, version, state)
        return state

    def put(self, instance_id: uuid.UUID, version: RowVersion, state: InstanceState) -> None:
        """Keep ``state`` as the one the row holds at ``version``."""
        self._states[instance_id] = (version, state)
        self._states.move_to_end(instance_id)
        while len(self._states) > self._size:
            self._states.popitem(last=False)

    def forget(self, instance_id: uuid.UUID) -> None:
        """Drop what is kept for the instance (its row is being written with another state
        in a transaction whose version would match the kept one)."""
        self._states.pop(instance_id, None)

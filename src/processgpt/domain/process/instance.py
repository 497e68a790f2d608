"""A process instance as callers see it (``bpm_proc_inst`` of an engine-driven instance), and
one line of its history (``process_history``). Pure data: the execution layer
(:mod:`processgpt.runtime.process_service`) reads them from the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processgpt.domain.process.state import Incident, InstanceStatus


@dataclass(frozen=True)
class ProcessInstance:
    """One process instance.

    ``status`` and ``current_activity_ids`` are what the engine's state said after the last
    step (kept equal in the same transaction). ``version`` is the definition version the
    instance is pinned to (it changes only by an explicit migration). ``incidents`` are the
    open ones (a resolved incident is only in the history). ``parent_id``: the instance this
    one runs for (call activity or embedded sub-process), None for a top-level instance.
    ``end_date`` is set exactly when the instance is COMPLETED or CANCELLED.
    ``child_incidents``: the open incidents of its child instances (and theirs), which hold
    the step of this instance that started them; resolve them on the child.
    An instance of the one-task form (no engine state) has status RUNNING until it is
    finished by other means, and no incidents.
    """

    id: uuid.UUID
    tenant_id: str
    proc_def_id: str | None
    version: int | None
    name: str
    status: InstanceStatus
    current_activity_ids: list[str] = field(default_factory=list)
    variables: Mapping[str, Any] = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)
    parent_id: uuid.UUID | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    child_incidents: list[ChildIncident] = field(default_factory=list)


@dataclass(frozen=True)
class ChildIncident:
    """An open incident of a child (or deeper descendant) instance."""

    child_id: uuid.UUID
    incident: Incident


@dataclass(frozen=True)
class HistoryLine:
    """One line of an instance's history, in commit order: ``seq`` is 1, 2, … per instance
    with no gaps, so ``after_seq`` pages and streams resume exactly. ``kind`` is a
    :class:`~processgpt.domain.process.step.HistoryKind` value; ``data`` its JSON (see the
    kind's docs); ``at`` the step's time."""

    seq: int
    kind: str
    node_id: str | None
    activation: int | None
    data: Mapping[str, Any]
    at: datetime

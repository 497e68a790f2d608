"""Steps of process instances: the engine's decisions applied to the database, in the caller's
transaction.

A :class:`StepRun` lives for one transaction. It locks instances, runs the pure engine
(:mod:`processgpt.domain.process.engine`) on their stored state and applies each
:class:`~processgpt.domain.process.step.Step` in one statement (``apply_step``: the state and
columns of ``bpm_proc_inst``, history lines, work items, cancellations, timers, one NOTIFY on
``processgpt_process``). What a step causes in other instances (a child started, a child that
completed or failed answering its parent, a child cancelled by its parent) runs in the same
transaction, after the step that caused it is applied.

Lock order (no two transactions can wait on each other in a cycle): instances before work
items and timers; among instances, by root instance, then depth from the root, then id
(``lock_instances``), which puts every parent before its children. A step of a child locks
its ancestors first (a completing child advances its parent); a parent cancelling its
children locks them after itself. The one order the step cannot keep is a parent's children
locked after an unrelated instance of a later root in the same batch; Postgres then detects
the deadlock and the transaction is retried by its caller (a transient error).

Text conditions: a step that returns :class:`~processgpt.domain.process.step.NeedsVerdicts`
changes nothing; a judge task is inserted instead (see :mod:`processgpt.domain.process.
step_events`), and when it ends DONE the stored event runs again with its verdicts.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processgpt.db.process_graphs import SUBPROCESS_PATH_SEPARATOR, GraphCache, subgraph
from processgpt.db.process_states import RowVersion, StateCache
from processgpt.db.sql import QUERIES
from processgpt.db.step_batch import StepBatch
from processgpt.domain.events import decode_json
from processgpt.domain.process import engine
from processgpt.domain.process.events import (
    Cancel,
    ChildCompleted,
    ChildFailed,
    EventRejected,
    Migrate,
)
from processgpt.domain.process.model import Activity, AgentMode, ProcessGraph, TaskType
from processgpt.domain.process.state import InstanceState, InstanceStatus
from processgpt.domain.process.step import (
    CancelChild,
    CancelTask,
    CancelTimer,
    CreateTask,
    CreateTimer,
    InstanceCancelled,
    InstanceCompleted,
    NeedsVerdicts,
    StartChild,
    Step,
    Verdict,
    history_json,
)
from processgpt.domain.process.step_events import (
    MigrateTo,
    StartInstance,
    StoredEvent,
    event_to_json,
    judge_input,
    judge_query,
    verdicts_to_json,
)

log = logging.getLogger(__name__)

HUMAN_AGENT = "human"
"""``agent_orch`` of a person's work item (TODO): no worker serves it."""


@dataclass(frozen=True)
class StepSettings:
    judge_agent: str = "llm"
    """The agent (orchestrator or agent profile) that judges text conditions."""
    default_agent: str = "llm"
    """The agent of an agent step whose activity names neither agent nor orchestration."""


@dataclass
class Instance:
    """A locked instance row, kept current by the steps of this transaction. Its state is
    read from JSON (text, or decoded already) when first used (a row that cannot be read
    fails the step that uses it, not the ones around it)."""

    id: uuid.UUID
    tenant_id: str
    proc_def_id: str
    version: int
    status: str
    raw_state: str | Mapping[str, Any] | None
    parent_id: uuid.UUID | None
    parent_node_id: str | None
    parent_activation: int | None
    subprocess_path: str | None
    history_seq: int
    row_version: RowVersion | None = None
    """The row's version as locked (``lock_instances``), for the worker's state cache."""
    _state: InstanceState | None = None
    states: StateCache | None = None
    """Where states built from JSON are kept between transactions (a worker's)."""

    @property
    def state(self) -> InstanceState | None:
        """The engine's state (None: an instance of the one-task form)."""
        if self._state is None and self.raw_state is not None:
            raw = self.raw_state
            if self.states is not None:
                self._state = self.states.get(self.id, self.row_version, raw)
            else:
                self._state = InstanceState.from_json(
                    decode_json(raw) if isinstance(raw, str) else raw
                )
        return self._state

    @state.setter
    def state(self, value: InstanceState) -> None:
        self._state = value
        self.raw_state = {}  # superseded by the state itself

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Instance:
        xmin = row.get("xmin")
        return cls(
            row["proc_inst_id"],
            row["tenant_id"],
            row["proc_def_id"],
            row["proc_def_version"],
            row["status"],
            row["state"],
            row["parent_proc_inst_id"],
            row["parent_node_id"],
            row["parent_activation"],
            row["subprocess_node_id"],
            row["history_seq"],
            None if xmin is None else RowVersion(xmin, row["history_seq"]),
        )


@dataclass
class Outcome:
    """What became of an event: applied, waiting for verdicts (a judge task), or rejected."""

    applied: bool = False
    judge_task: uuid.UUID | None = None
    rejected: EventRejected | None = None


@dataclass
class _Queued:
    instance_id: uuid.UUID
    event: StoredEvent
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    tell_parent: bool = True


@dataclass
class _Work:
    """A step's decisions, sorted by what applies them."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    starts: list[StartChild] = field(default_factory=list)
    stops: list[CancelChild] = field(default_factory=list)
    completed: InstanceCompleted | None = None
    cancelled: InstanceCancelled | None = None
    reason: str = ""


class StepRun:
    """The steps of one transaction on ``conn`` (see the module). Not reusable across
    transactions: it caches the rows it locked."""

    def __init__(
        self,
        conn: Any,
        graphs: GraphCache,
        settings: StepSettings,
        now: datetime | None = None,
        states: StateCache | None = None,
    ) -> None:
        self.conn = conn
        self.graphs = graphs
        self.settings = settings
        self.states = states
        """Set: states read from locked rows are looked up here (see
        :mod:`processgpt.db.process_states`)."""
        self.now = now
        """The steps' time: the transaction's now(), taken from the first row locked (or
        read when a step runs before any)."""
        self.locked: dict[uuid.UUID, Instance] = {}
        self.batch: StepBatch | None = None
        """Set: plain steps are gathered and written by :meth:`flush` (a worker's batch)."""

    async def flush(self) -> None:
        """Write the steps gathered in :attr:`batch` (call before the transaction ends)."""
        if self.batch is not None:
            await self.batch.flush(self.conn)

    # -- locking --------------------------------------------------------------------------

    async def lock(self, ids: list[uuid.UUID]) -> None:
        """Lock the instances ``ids`` and their ancestors (in the lock order)."""
        wanted = [i for i in ids if i not in self.locked]
        if not wanted:
            return
        self.adopt(await self.conn.fetch(QUERIES["lock_instances"], wanted))

    def adopt(self, rows: list[Any]) -> None:
        """Keep rows of ``lock_instances`` (or ``insert_instance``) locked by the caller in
        this transaction."""
        for row in rows:
            if self.now is None:
                self.now = row["now"]
            if row["proc_inst_id"] not in self.locked:
                inst = Instance.from_row(row)
                inst.states = self.states
                self.locked[inst.id] = inst

    async def lock_of_tenant(self, tenant_id: str, instance_id: uuid.UUID) -> Instance | None:
        """Lock one instance of the tenant (and its ancestors); None when there is none."""
        if instance_id in self.locked:
            inst = self.locked[instance_id]
            return inst if inst.tenant_id == tenant_id else None
        self.adopt(
            await self.conn.fetch(QUERIES["lock_instance_of_tenant"], instance_id, tenant_id)
        )
        return self.locked.get(instance_id)

    # -- running events -------------------------------------------------------------------

    async def run(
        self,
        instance_id: uuid.UUID,
        event: StoredEvent,
        verdicts: Mapping[str, Verdict] | None = None,
    ) -> Outcome:
        """Run ``event`` on the (locked) instance and everything it causes. The outcome is
        the first event's; an event the engine rejects there is reported, not raised (what
        it would have caused elsewhere is logged and dropped)."""
        queue: deque[_Queued] = deque([_Queued(instance_id, event, dict(verdicts or {}))])
        first: Outcome | None = None
        while queue:
            item = queue.popleft()
            outcome = await self._one(item, queue)
            if first is None:
                first = outcome
            elif outcome.rejected is not None:
                log.warning(
                    "process event dropped instance=%s event=%s reason=%s",
                    item.instance_id,
                    type(item.event).__name__,
                    outcome.rejected,
                )
        assert first is not None
        return first

    async def _one(self, item: _Queued, queue: deque[_Queued]) -> Outcome:
        if item.instance_id not in self.locked:
            await self.lock([item.instance_id])
        inst = self.locked[item.instance_id]
        if inst.state is None:
            return Outcome(rejected=EventRejected("the instance is not driven by a definition"))
        if self.now is None:
            self.now = await self.conn.fetchval("SELECT now()")
        now: datetime = self.now
        graph = await self.graph(inst)
        version: int | None = None
        event = item.event
        try:
            if isinstance(event, StartInstance):
                result = engine.start(
                    graph,
                    inst.state.variables,
                    now=now,
                    roles=inst.state.roles,
                    start_node=event.start_node,
                    verdicts=item.verdicts,
                )
            elif isinstance(event, MigrateTo):
                if inst.subprocess_path:
                    raise EventRejected("an embedded sub-process migrates with its parent only")
                version = event.to_version
                target = await self.graphs.get(self.conn, inst.tenant_id, inst.proc_def_id, version)
                result = engine.advance(
                    graph,
                    inst.state,
                    Migrate(target, event.mapping),
                    now=now,
                    verdicts=item.verdicts,
                )
            else:
                result = engine.advance(graph, inst.state, event, now=now, verdicts=item.verdicts)
        except EventRejected as exc:
            return Outcome(rejected=exc)
        if isinstance(result, NeedsVerdicts):
            task_id = await self._ask_judge(inst, event, item.verdicts, result)
            return Outcome(judge_task=task_id)
        await self._apply(inst, result, version=version, item=item, queue=queue)
        return Outcome(applied=True)

    async def graph(self, inst: Instance) -> ProcessGraph:
        root = await self.graphs.get(self.conn, inst.tenant_id, inst.proc_def_id, inst.version)
        return subgraph(root, inst.subprocess_path)

    # -- applying a step ------------------------------------------------------------------

    async def _apply(
        self,
        inst: Instance,
        step: Step,
        *,
        version: int | None,
        item: _Queued,
        queue: deque[_Queued],
    ) -> None:
        work = self._sort(step)
        state = step.state
        plain = (
            version is None
            and not (work.cancels or work.starts or work.stops)
            and work.cancelled is None
            and (work.completed is None or inst.parent_id is None)
        )
        if self.batch is not None and plain:
            self.batch.add(
                inst.id,
                state=state,
                history=history_json(step.history),
                tasks=work.tasks,
                timers=work.timers,
                drops=work.drops,
            )
            inst.state = state
            inst.status = state.status.value
            inst.history_seq += len(step.history)
            return
        if self.batch is not None and self.batch.holds(inst.id):
            await self.batch.flush(self.conn, inst.id)
        if self.states is not None:
            # This write would leave the row at the version a flush of this transaction
            # kept (the same xmin) with another state.
            self.states.forget(inst.id)
        row = await self.conn.fetchrow(
            QUERIES["apply_step"],
            inst.id,
            state.to_json(),
            state.status.value,
            state.current_activity_ids,
            dict(state.variables),
            history_json(step.history),
            work.tasks,
            work.cancels,
            work.cancelled is not None,
            work.timers,
            work.drops,
            version,
            work.reason,
        )
        inst.state = state
        inst.status = state.status.value
        inst.history_seq = row["history_seq"]
        if version is not None:
            inst.version = version
        for start in work.starts:
            await self._start_child(inst, start, queue)
        for stop in work.stops:
            await self._cancel_children(inst, stop, queue)
        if inst.parent_id is not None and inst.parent_node_id is not None and item.tell_parent:
            activation = inst.parent_activation or 1
            if work.completed is not None:
                output = dict(work.completed.variables)
                queue.append(
                    _Queued(inst.parent_id, ChildCompleted(inst.parent_node_id, activation, output))
                )
            elif work.cancelled is not None:
                queue.append(
                    _Queued(
                        inst.parent_id,
                        ChildFailed(
                            inst.parent_node_id,
                            activation,
                            f"the child instance was cancelled: {work.cancelled.reason}",
                        ),
                    )
                )

    def _sort(self, step: Step) -> _Work:
        work = _Work()
        for d in step.decisions:
            if isinstance(d, CreateTask):
                work.tasks.append(self._task_row(d))
            elif isinstance(d, CancelTask):
                work.cancels.append({"activity_id": d.node_id, "activation": d.activation})
                work.reason = work.reason or d.reason
            elif isinstance(d, CreateTimer):
                work.timers.append({"key": d.key, "due_at": d.due_at.isoformat()})
            elif isinstance(d, CancelTimer):
                work.drops.append(d.key)
            elif isinstance(d, StartChild):
                work.starts.append(d)
            elif isinstance(d, CancelChild):
                work.stops.append(d)
            elif isinstance(d, InstanceCompleted):
                work.completed = d
            elif isinstance(d, InstanceCancelled):
                work.cancelled = d
                work.reason = d.reason
        return work

    def _task_row(self, d: CreateTask) -> dict[str, Any]:
        activity = d.activity
        assignee = d.assignee or None
        row: dict[str, Any] = {
            "activity_id": d.node_id,
            "activation": d.activation,
            "activity_name": d.name or d.node_id,
            "user_id": assignee,
            "role": activity.role,
            "tool": activity.tool,
            "description": activity.instruction or None,
            "query": activity.instruction,
            "input": dict(d.input),
            "due_at": None if d.due_at is None else d.due_at.isoformat(),
            "step_event": None,
        }
        if is_agent_step(activity):
            row["agent"] = activity.agent or activity.orchestration or self.settings.default_agent
            row["status"] = "PENDING"
        else:
            row["agent"] = HUMAN_AGENT
            row["status"] = "TODO"
        # A missing key reads as NULL (jsonb_to_recordset): nulls are not sent.
        return {k: v for k, v in row.items() if v is not None}

    async def _start_child(self, parent: Instance, d: StartChild, queue: deque[_Queued]) -> None:
        if d.subprocess is not None:
            definition_id, version = parent.proc_def_id, parent.version
            path = d.node_id
            if parent.subprocess_path:
                path = parent.subprocess_path + SUBPROCESS_PATH_SEPARATOR + d.node_id
        else:
            definition_id, path = d.called or "", None
            version = await self.conn.fetchval(
                QUERIES["latest_version"], parent.tenant_id, definition_id
            )
            if version is None:
                queue.append(
                    _Queued(
                        parent.id,
                        ChildFailed(
                            d.node_id, d.activation, f"definition {definition_id!r} not found"
                        ),
                    )
                )
                return
        roles = parent.state.roles if parent.state is not None else {}
        initial = InstanceState(variables=dict(d.variables), roles=dict(roles))
        row = await self.conn.fetchrow(
            QUERIES["insert_instance"],
            parent.tenant_id,
            definition_id,
            version,
            "",
            dict(d.variables),
            None,
            initial.to_json(),
            parent.id,
            d.node_id,
            d.activation,
            path,
            None,  # its tasks link to the nearest ancestor's trace context
            None,
        )
        child = Instance.from_row(row)
        self.locked[child.id] = child
        queue.append(_Queued(child.id, StartInstance()))

    async def _cancel_children(
        self, parent: Instance, d: CancelChild, queue: deque[_Queued]
    ) -> None:
        rows = await self.conn.fetch(QUERIES["lock_children"], parent.id, d.node_id, d.activation)
        for row in rows:
            child = self.locked.setdefault(row["proc_inst_id"], Instance.from_row(row))
            if child.state is not None and not child.state.finished:
                queue.append(_Queued(child.id, Cancel(d.reason), tell_parent=False))

    async def _ask_judge(
        self,
        inst: Instance,
        event: StoredEvent,
        verdicts: Mapping[str, Verdict],
        needs: NeedsVerdicts,
    ) -> uuid.UUID:
        stored = {
            "event": event_to_json(event),
            "verdicts": verdicts_to_json(verdicts),
            "flow_ids": [q.flow_id for q in needs.questions],
        }
        gateways = sorted({q.gateway_id for q in needs.questions})
        task_id: uuid.UUID = await self.conn.fetchval(
            QUERIES["insert_judge_task"],
            inst.id,
            gateways[0],
            self.settings.judge_agent,
            "Judge conditions at " + ", ".join(gateways),
            judge_query(needs.questions),
            judge_input(needs.questions, needs.variables),
            stored,
        )
        return task_id


def is_agent_step(activity: Activity) -> bool:
    """An agent runs the step (draft or complete), else a person does (a TODO work item)."""
    return activity.agent_mode is not AgentMode.NONE or activity.task_type in (
        TaskType.SERVICE,
        TaskType.SCRIPT,
    )


def instance_status(value: str) -> InstanceStatus:
    """An instance's status column as the engine's status (the one-task form's NEW and
    ERROR read as RUNNING and INCIDENT)."""
    if value in ("NEW",):
        return InstanceStatus.RUNNING
    if value == "ERROR":
        return InstanceStatus.INCIDENT
    return InstanceStatus(value)

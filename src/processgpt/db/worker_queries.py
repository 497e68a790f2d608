"""The statements a worker runs: claim, heartbeat, presence, lease recovery, and the batched,
fenced write of events and results. Claimed rows leave this module as :class:`ClaimedTask`s,
and the driver errors the worker must tell apart are dealt with here."""

from __future__ import annotations

import logging
import operator
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from processgpt.db.database import Database, is_transient
from processgpt.db.process_graphs import GraphCache
from processgpt.db.process_states import StateCache
from processgpt.db.process_steps import StepRun, StepSettings
from processgpt.db.process_task_ends import EndedTask, task_ended
from processgpt.db.sql import QUERIES
from processgpt.db.step_batch import StepBatch
from processgpt.domain.events import EventRecord, decode_json
from processgpt.domain.task import TaskStatus

log = logging.getLogger(__name__)

SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan"}
"""Session settings for connections that run these statements. Each has one good plan whatever
its parameters (rows found by primary key, or along the claim index), so it is planned once per
connection. Left to choose, Postgres re-plans the claim at every execution, because its
generic plan is costed for a LIMIT of a tenth of the backlog; the planning cost more than
running it."""

_CONTEXT_COLUMNS = ("ctx_form", "ctx_users", "ctx_tenant_mcp", "ctx_agent_profile", "ctx_sources")

_claimed_fields = operator.itemgetter(
    "id",
    "tenant_id",
    "agent_orch",
    "query",
    "proc_inst_id",
    "fence",
    "attempts",
    "max_attempts",
    "last_seq",
)
"""The columns of a claimed record that :class:`ClaimedTask` keeps as fields, in their order
(read in one call)."""


@dataclass(slots=True)  # read-only by contract; frozen costs ~0.9 µs per task on 3.11
class ClaimedTask:
    """A task as a worker claimed it, for one attempt.

    The fields are what the worker and the agent adapter read for every run. The rest of the
    claim's record (the whole ``todolist`` row, and what the claim read for the task's
    context: form, people, MCP configuration, agent profile, sources) is decoded only when
    asked for, by :meth:`row`, :meth:`loaded_context` and :attr:`form_id`.
    """

    id: uuid.UUID
    tenant_id: str
    agent_orch: str
    query: str
    proc_inst_id: uuid.UUID | None
    fence: int
    attempts: int
    """This attempt's number (the claim counted it)."""
    max_attempts: int
    last_seq: int
    """Sequence number of the newest event in the task's log when it was claimed."""
    record: Mapping[str, Any] = field(repr=False, compare=False)
    """The claim's record: read only by the methods below."""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ClaimedTask:
        """A claimed task from a record of ``claim_tasks`` (on the claim's hot path: no
        validation, no copies)."""
        task_id, tenant, orch, query, proc_inst_id, fence, attempts, max_attempts, last_seq = (
            _claimed_fields(record)
        )
        return cls(
            task_id,
            tenant,
            orch,
            query,
            proc_inst_id,
            fence,
            attempts,
            max_attempts,
            last_seq,
            record,
        )

    def row(self) -> dict[str, Any]:
        """The task's ``todolist`` row as claimed (a new dict at every call)."""
        return {k: v for k, v in self.record.items() if not k.startswith("ctx_")}

    def loaded_context(self) -> dict[str, Any]:
        """What the claim read for the task's context: ``form``, ``users``, ``tenant_mcp``,
        ``agent_profile``, ``sources`` (None when absent)."""
        return {key[4:]: self.record[key] for key in _CONTEXT_COLUMNS}

    @property
    def step(self) -> StepRef | None:
        """What the task is to its process: a step (``activation`` set) or a judge task
        (``step_event`` set); None for any other task."""
        record = self.record
        proc_inst_id = record["proc_inst_id"]
        if proc_inst_id is None:
            return None
        activation, step_event = record.get("activation"), record.get("step_event")
        if activation is None and step_event is None:
            return None
        return StepRef(proc_inst_id, record["activity_id"], activation, step_event)

    @property
    def wait_seconds(self) -> float:
        """How long the task waited for this claim since it was due (its ``run_at``: when it
        was created, or when its retry backoff ended), by the database's clock."""
        record = self.record
        return float((record["updated_at"] - record["run_at"]).total_seconds())

    @property
    def form_id(self) -> str | None:
        """The id of the task's form, if it has one."""
        form = self.record["ctx_form"]
        return form.get("id") if isinstance(form, dict) else None


@dataclass(frozen=True, slots=True)
class StepRef:
    """A process task's place in its process (see :attr:`ClaimedTask.step`)."""

    proc_inst_id: uuid.UUID
    activity_id: str | None
    activation: int | None
    step_event: Mapping[str, Any] | None


@dataclass(slots=True)
class EventRow:
    """An event with its sequence number, its data already JSON-encoded."""

    seq: int
    job_id: str
    event_type: str
    crew_type: str | None
    status: str | None
    data_json: str
    text: list[str] | None = None  # a text delta still growing: data is {"text": joined}
    text_chars: int = 0


@dataclass(slots=True)
class TaskWrite:
    """Everything one batch writes for one task, fenced by ``fence``. ``None`` fields are left
    unchanged; ``status`` set means the attempt ends (the lease is released)."""

    todo_id: uuid.UUID
    fence: int
    events: list[EventRow] = field(default_factory=list)
    status: TaskStatus | None = None
    output_json: str | None = None
    draft_json: str | None = None
    error_json: str | None = None
    retry_delay: float | None = None  # seconds from the database's now() until due again
    attempts: int | None = None
    step: StepRef | None = None  # a process task: its end runs the process's step

    @property
    def ends_step(self) -> bool:
        """The write ends a process task for good (DONE, or FAILED with no retry left): its
        process step runs in the same transaction."""
        return self.step is not None and self.status in (TaskStatus.DONE, TaskStatus.FAILED)


class _StepCrashed(Exception):
    """A process step of a batch could not be applied (its cause is chained)."""

    def __init__(self, task_id: uuid.UUID, instance_id: uuid.UUID, reason: str) -> None:
        super().__init__(reason)
        self.task_id = task_id
        self.instance_id = instance_id
        self.reason = reason


class _FlushFailed(Exception):
    """The gathered steps of a batch were refused together (the cause is chained)."""


class WorkerQueries:
    def __init__(self, db: Database, *, step_settings: StepSettings | None = None) -> None:
        self.db = db
        self.step_settings = step_settings or StepSettings()
        self.graphs = GraphCache()
        self.states = StateCache()
        # Steps that failed to apply, by task, until their batch ran again without them.
        self._broken_steps: dict[uuid.UUID, str] = {}
        self._unbatched = False  # the next batch applies its steps one statement each

    async def claim(
        self,
        agent_orchs: list[str],
        limit: int,
        consumer: str,
        lease_seconds: float,
        max_running: Mapping[str, int] | None = None,
    ) -> list[ClaimedTask]:
        """Claim up to ``limit`` tasks of the given orchestrators, fairly between tenants
        (by weight, within each tenant's rate limit), each with what its context needs.
        ``max_running``: the most tasks an orchestrator may run at once across all workers
        (orchestrators not named have no limit)."""
        limited = sorted((max_running or {}).items())
        rows = await self.db.fetch(
            QUERIES["claim_tasks"],
            agent_orchs,
            limit,
            consumer,
            lease_seconds,
            [name for name, _ in limited],
            [most for _, most in limited],
        )
        return [ClaimedTask.from_record(row) for row in rows]

    async def seconds_until_next_run(self, agent_orchs: list[str]) -> float | None:
        """Seconds (by the database's clock) until the next delayed task is due; None if
        nothing waits."""
        value = await self.db.fetchval(QUERIES["next_run_at"], agent_orchs)
        return None if value is None else float(value)

    async def instance_trace_context(self, instance_id: uuid.UUID) -> tuple[str | None, str | None]:
        """The W3C trace context (traceparent, tracestate) a task of ``instance_id`` that
        carries none of its own links to: what started the instance (or its nearest
        ancestor). ``(None, None)`` when nothing traced started it."""
        row = await self.db.fetchrow(QUERIES["instance_trace_context"], instance_id)
        return (row["traceparent"], row["tracestate"]) if row is not None else (None, None)

    async def extend_leases(
        self, leases: list[tuple[uuid.UUID, int]], lease_seconds: float
    ) -> set[uuid.UUID]:
        """Extend the given leases; return the ids whose lease is still held."""
        rows = await self.db.fetch(
            QUERIES["extend_leases"],
            [t for t, _ in leases],
            [f for _, f in leases],
            lease_seconds,
        )
        return {r["id"] for r in rows}

    async def recover_expired(self, limit: int = 100) -> list[tuple[uuid.UUID, str, TaskStatus]]:
        """Put back (or fail, once its attempts are used up) up to ``limit`` tasks whose
        lease expired, whoever held them; each task with its agent and the state it was put
        in. A process
        task failed here runs its step (an incident) in the same transaction."""
        async with self.db.transaction() as conn:
            rows = await conn.fetch(QUERIES["recover_expired"], limit)
            failed = [
                r
                for r in rows
                if r["status"] == TaskStatus.FAILED
                and r["proc_inst_id"] is not None
                and (r["activation"] is not None or r["step_event"] is not None)
            ]
            if failed:
                # Work items before instances here (the one exception to the lock order):
                # a deadlock rolls the recovery back and the next interval tries again.
                run = StepRun(conn, self.graphs, self.step_settings)
                await run.lock(sorted({r["proc_inst_id"] for r in failed}))
                for r in failed:
                    ended = EndedTask(
                        r["id"],
                        r["proc_inst_id"],
                        r["activity_id"],
                        r["activation"],
                        r["step_event"],
                        False,
                        error=r["error"],
                    )
                    try:
                        async with conn.transaction():  # a savepoint: this step alone
                            await task_ended(run, ended)
                    except Exception as exc:
                        if is_transient(exc):
                            raise
                        # A step that cannot be applied must not stop lease recovery.
                        log.error(
                            "process step failed; the task's failure is kept without it "
                            "task=%s error=%s",
                            r["id"],
                            type(exc).__name__,
                            exc_info=exc,
                        )
                        run.locked.pop(r["proc_inst_id"], None)  # its state may be stale
                        error = {
                            "code": "process_step_failed",
                            "message": f"the process step could not be applied "
                            f"({type(exc).__name__})",
                        }
                        await conn.execute(QUERIES["mark_step_failed"], r["id"], error)
        return [(r["id"], r["agent_orch"], TaskStatus(r["status"])) for r in rows]

    async def apply_batch(self, writes: list[TaskWrite]) -> set[uuid.UUID]:
        """Write a batch (at most one write per task) in one statement; return the tasks
        whose fence held (their writes are durable). The others lost their lease and nothing
        of theirs was written.

        Running a batch again after its outcome was unknown (its connection dropped) is safe
        (see the statement). If that earlier run commits while this one waits for its rows,
        this one collides with the earlier run's events; it is then run once more, and sees
        them.
        """
        while True:
            try:
                return await self._apply_batch(writes)
            except asyncpg.UniqueViolationError as exc:
                if getattr(exc, "constraint_name", None) != "events_pkey":
                    raise
                return await self._apply_batch(writes)
            except _FlushFailed as failed:
                # Which step's values were refused is found by applying them one at a time.
                log.warning(
                    "gathered process steps refused; applying them one by one error=%s",
                    type(failed.__cause__).__name__,
                )
                self._unbatched = True
            except _StepCrashed as crash:
                # A step that cannot be applied (a bug, or values the database refuses) must
                # not hold up the batch, whose writes are retried until they commit: the
                # batch runs again without that step, and the task says why.
                log.error(
                    "process step failed; the task's end is written without it task=%s "
                    "instance=%s error=%s",
                    crash.task_id,
                    crash.instance_id,
                    type(crash.__cause__).__name__,
                    exc_info=crash.__cause__,
                )
                self._broken_steps[crash.task_id] = crash.reason

    async def _apply_batch(self, writes: list[TaskWrite]) -> set[uuid.UUID]:
        if any(w.ends_step for w in writes):
            return await self._apply_batch_with_steps(writes)
        rows = await self.db.fetch(QUERIES["apply_batch"], *_batch_args(writes))
        return {r["id"] for r in rows}

    async def _apply_batch_with_steps(self, writes: list[TaskWrite]) -> set[uuid.UUID]:
        """The batch and the process steps its ended tasks cause, in one transaction: the
        instances locked first (the steps' lock order), then the batch, then each step of a
        task that ended in this statement (a re-run batch runs no step twice)."""
        ending = [w for w in writes if w.ends_step]
        instances = sorted({w.step.proc_inst_id for w in ending if w.step is not None})
        async with self.db.transaction() as conn:
            run = StepRun(conn, self.graphs, self.step_settings, states=self.states)
            batched = not self._unbatched
            if batched:
                run.batch = StepBatch(self.states)
            await run.lock(instances)
            rows = await conn.fetch(QUERIES["apply_batch"], *_batch_args(writes))
            ended_now = {r["id"] for r in rows if r["status_before"] == TaskStatus.IN_PROGRESS}
            for w in ending:
                if w.todo_id not in ended_now or w.step is None:
                    continue
                broken = self._broken_steps.pop(w.todo_id, None)
                if broken is not None:
                    error = {"code": "process_step_failed", "message": broken}
                    await conn.execute(QUERIES["mark_step_failed"], w.todo_id, error)
                    continue
                try:
                    outcome = await task_ended(
                        run,
                        EndedTask(
                            w.todo_id,
                            w.step.proc_inst_id,
                            w.step.activity_id,
                            w.step.activation,
                            w.step.step_event,
                            w.status is TaskStatus.DONE,
                            None if w.output_json is None else decode_json(w.output_json),
                            None if w.error_json is None else decode_json(w.error_json),
                        ),
                    )
                    if outcome.rejected is not None:
                        # Its step no longer waits (interrupted by a timer, migrated, the
                        # incident resolved meanwhile): the end is kept, nothing advances.
                        log.info(
                            "process task ended after its step moved on task=%s reason=%s",
                            w.todo_id,
                            outcome.rejected,
                        )
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    reason = f"the process step could not be applied ({type(exc).__name__})"
                    raise _StepCrashed(w.todo_id, w.step.proc_inst_id, reason) from exc
            try:
                await run.flush()
            except Exception as exc:
                if is_transient(exc):
                    raise
                raise _FlushFailed from exc
        self._unbatched = False
        return {r["id"] for r in rows}

    async def fail_task_write(
        self,
        todo_id: uuid.UUID,
        fence: int,
        error: dict[str, Any],
        event: EventRecord,
        event_data_json: str,
    ) -> bool:
        """Fail a running task whose write the database refused: ``error`` becomes its error
        and ``event`` (its data already encoded) is logged after whatever the task's log
        already holds. False if the fence no longer holds."""
        row = await self.db.fetchrow(
            QUERIES["fail_task_write"],
            todo_id,
            fence,
            error,
            event.job_id,
            event.event_type,
            event.crew_type,
            event_data_json,
        )
        return row is not None

    async def register_orchestrators(self, names: dict[str, str]) -> None:
        """Register the orchestrators a worker serves (name → description), seen now."""
        await self.db.execute(QUERIES["register_orchestrators"], list(names), list(names.values()))


def _batch_args(writes: list[TaskWrite]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """``apply_batch``'s two arrays of records: one per task, one per event."""
    return (
        [
            (
                w.todo_id,
                w.fence,
                w.events[-1].seq if w.events else None,
                w.status,
                w.output_json,
                w.draft_json,
                w.error_json,
                w.retry_delay,
                w.attempts,
            )
            for w in writes
        ],
        [
            (w.todo_id, e.seq, e.job_id, e.event_type, e.crew_type, e.status, e.data_json)
            for w in writes
            for e in w.events
        ],
    )

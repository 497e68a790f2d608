"""Process instances driven by the engine: starting them, the transactions that advance them,
and their reads (instances, history, worklist).

Every method that changes an instance is one transaction: the instance (with its ancestors)
locked first, then the engine's step applied (:mod:`processgpt.db.process_steps`), or
nothing. A transaction that met a deadlock (the one lock order the steps cannot keep, see
there) is run again, a few times at most.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from processgpt.db.database import Database
from processgpt.db.process_graphs import GraphCache
from processgpt.db.process_steps import Outcome, StepRun, StepSettings, instance_status
from processgpt.db.sql import QUERIES
from processgpt.db.tasks import to_task
from processgpt.domain.errors import (
    DatabaseUnavailable,
    InvalidInput,
    InvalidTransition,
    ProcessDefinitionNotFound,
    ProcessEventRejected,
    ProcessNotFound,
    TaskNotFound,
)
from processgpt.domain.process.events import (
    Cancel,
    MessageReceived,
    ResolveIncident,
    SignalReceived,
    TaskCompleted,
    TimerFired,
)
from processgpt.domain.process.forms import form_problems
from processgpt.domain.process.instance import ChildIncident, HistoryLine, ProcessInstance
from processgpt.domain.process.state import InstanceState, InstanceStatus
from processgpt.domain.process.step_events import MigrateTo, StartInstance, StoredEvent
from processgpt.domain.task import Task, TaskStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

_DEADLOCK_RETRIES = 5


@dataclass(frozen=True)
class Started:
    instance_id: uuid.UUID
    created: bool


class ProcessInstances:
    """The transactions and reads of engine-driven instances (see the module)."""

    def __init__(
        self,
        db: Database,
        *,
        settings: StepSettings | None = None,
        graphs: GraphCache | None = None,
    ) -> None:
        self.db = db
        self.settings = settings or StepSettings()
        self.graphs = graphs or GraphCache()

    # -- transactions ---------------------------------------------------------------------

    @asynccontextmanager
    async def _steps(self, within: Any = None) -> AsyncIterator[StepRun]:
        """A step's transaction; with ``within`` (a connection in a transaction of the
        caller), a savepoint in it that commits with the caller's transaction."""
        if within is not None:
            async with within.transaction():
                yield StepRun(within, self.graphs, self.settings)
            return
        async with self.db.transaction() as conn:
            yield StepRun(conn, self.graphs, self.settings)

    async def _retrying(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op`` (one transaction) again when it met a deadlock."""
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                return await op()
            except DatabaseUnavailable as exc:
                deadlock = isinstance(exc.__cause__, asyncpg.exceptions.DeadlockDetectedError)
                if not deadlock or attempt == _DEADLOCK_RETRIES - 1:
                    raise
                log.info("process step met a deadlock; running it again attempt=%d", attempt)
        raise AssertionError("unreachable")

    async def start(
        self,
        tenant_id: str,
        proc_def_id: str,
        *,
        version: int | None,
        variables: Mapping[str, Any],
        roles: Mapping[str, str],
        name: str,
        idempotency_key: str | None,
        start_node: str | None = None,
        within: Any = None,
        trace: tuple[str | None, str | None] = (None, None),
    ) -> Started:
        """Insert the instance and run its first step, in one transaction (see
        :meth:`ProcessService.start <processgpt.runtime.process_service.ProcessService.
        start>`). With ``within`` (a connection in the caller's transaction) the start is
        part of that transaction: it commits, or rolls back, with it (not retried here).
        ``trace``: the W3C trace context (traceparent, tracestate) of what started it."""

        async def op() -> Started:
            async with self._steps(within) as run:
                chosen = version
                if chosen is None:
                    chosen = await run.conn.fetchval(
                        QUERIES["latest_version"], tenant_id, proc_def_id
                    )
                    if chosen is None:
                        raise ProcessDefinitionNotFound(proc_def_id)
                else:
                    await run.graphs.get(run.conn, tenant_id, proc_def_id, chosen)
                initial = InstanceState(variables=dict(variables), roles=dict(roles))
                row = await run.conn.fetchrow(
                    QUERIES["insert_instance"],
                    tenant_id,
                    proc_def_id,
                    chosen,
                    name,
                    dict(variables),
                    idempotency_key,
                    initial.to_json(),
                    None,
                    None,
                    None,
                    None,
                    *trace,
                )
                if row is None:
                    found = await run.conn.fetchval(
                        QUERIES["get_instance_by_key"], tenant_id, idempotency_key
                    )
                    return Started(found, False)
                run.adopt([row])
                inst = run.locked[row["proc_inst_id"]]
                outcome = await run.run(inst.id, StartInstance(start_node))
                _raise_rejected(outcome, inst.id)
                return Started(inst.id, True)

        try:
            return await (op() if within is not None else self._retrying(op))
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise InvalidInput(f"tenant {tenant_id!r} does not exist") from None

    async def event(self, tenant_id: str, instance_id: uuid.UUID, event: StoredEvent) -> Outcome:
        """Run ``event`` on the tenant's instance in one transaction.
        :class:`ProcessNotFound`; an event the engine rejects: :class:`InvalidTransition`."""

        async def op() -> Outcome:
            async with self._steps() as run:
                inst = await run.lock_of_tenant(tenant_id, instance_id)
                if inst is None:
                    raise ProcessNotFound(instance_id)
                if inst.state is None:
                    raise ProcessEventRejected(
                        instance_id, "the instance was not started from a definition"
                    )
                outcome = await run.run(inst.id, event)
                _raise_rejected(outcome, inst.id)
                return outcome

        return await self._retrying(op)

    async def cancel(self, tenant_id: str, instance_id: uuid.UUID, reason: str) -> Outcome:
        return await self.event(tenant_id, instance_id, Cancel(reason))

    async def send_message(
        self, tenant_id: str, instance_id: uuid.UUID, name: str, payload: Mapping[str, Any]
    ) -> Outcome:
        return await self.event(tenant_id, instance_id, MessageReceived(name, dict(payload)))

    async def send_signal(
        self, tenant_id: str, instance_id: uuid.UUID, name: str, payload: Mapping[str, Any]
    ) -> Outcome:
        return await self.event(tenant_id, instance_id, SignalReceived(name, dict(payload)))

    async def resolve_incident(
        self,
        tenant_id: str,
        instance_id: uuid.UUID,
        incident_id: str,
        variables: Mapping[str, Any],
    ) -> Outcome:
        return await self.event(
            tenant_id, instance_id, ResolveIncident(incident_id, dict(variables))
        )

    async def migrate(
        self,
        tenant_id: str,
        instance_id: uuid.UUID,
        to_version: int,
        mapping: Mapping[str, str],
    ) -> Outcome:
        return await self.event(tenant_id, instance_id, MigrateTo(to_version, dict(mapping)))

    async def complete_task(
        self,
        tenant_id: str,
        task_id: uuid.UUID,
        output: Mapping[str, Any],
        idempotency_key: str | None,
    ) -> Task:
        """A person's work item TODO → DONE, and its step, in one transaction (see
        :meth:`ProcessService.complete_task <processgpt.runtime.process_service.
        ProcessService.complete_task>`)."""

        async def op() -> Task:
            async with self._steps() as run:
                conn = run.conn
                found = await conn.fetchrow(QUERIES["get_task_plain"], task_id, tenant_id)
                if found is None:
                    raise TaskNotFound(task_id)
                run.now = found["now"]
                if found["proc_inst_id"] is not None:
                    await run.lock([found["proc_inst_id"]])  # instances before work items
                response = {"idempotency_key": idempotency_key, "output": dict(output)}
                done = await conn.fetchrow(
                    QUERIES["complete_human_task"], task_id, tenant_id, dict(output), response
                )
                if done is None:
                    return await self._not_todo(conn, task_id, tenant_id, idempotency_key)
                if done["form_id"] is not None:
                    problems = form_problems(done["form_id"], done["form_fields"], output)
                    if problems:  # rolls the completion back
                        raise InvalidInput("; ".join(problems), field="output")
                if done["activation"] is not None and done["proc_inst_id"] is not None:
                    outcome = await run.run(
                        done["proc_inst_id"],
                        TaskCompleted(done["activity_id"], done["activation"], dict(output)),
                    )
                    _raise_rejected(outcome, done["proc_inst_id"])
                return to_task(done)

        return await self._retrying(op)

    @staticmethod
    async def _not_todo(
        conn: Any, task_id: uuid.UUID, tenant_id: str, idempotency_key: str | None
    ) -> Task:
        """The task was not TODO: the earlier completion with the same key, else 409."""
        row = await conn.fetchrow(QUERIES["get_task"], task_id, tenant_id)
        if row is None:
            raise TaskNotFound(task_id)
        status = TaskStatus(row["status"])
        previous = row["human_response"]
        if (
            idempotency_key is not None
            and status is TaskStatus.DONE
            and isinstance(previous, dict)
            and previous.get("idempotency_key") == idempotency_key
        ):
            return to_task(row)
        raise InvalidTransition(task_id, status.value, "complete it")

    async def fire_due_timers(self, limit: int) -> int:
        """Fire up to ``limit`` due timers in one transaction (see the statement
        ``due_timers``): each instance locked first, then its timer row taken; a timer whose
        row is gone (cancelled by a step, or fired by another worker) is skipped."""

        async def op() -> int:
            fired = 0
            async with self._steps() as run:
                due = await run.conn.fetch(QUERIES["due_timers"], limit)
                if not due:
                    return 0
                await run.lock(sorted({r["proc_inst_id"] for r in due}))
                for timer in due:
                    taken = await run.conn.fetchval(
                        QUERIES["take_timer"], timer["proc_inst_id"], timer["key"]
                    )
                    if taken is None:
                        continue
                    outcome = await run.run(timer["proc_inst_id"], TimerFired(timer["key"]))
                    if outcome.rejected is not None:
                        log.info(
                            "timer dropped instance=%s key=%s reason=%s",
                            timer["proc_inst_id"],
                            timer["key"],
                            outcome.rejected,
                        )
                    fired += 1
            return fired

        return await self._retrying(op)

    async def seconds_until_next_timer(self) -> float | None:
        value = await self.db.fetchval(QUERIES["next_timer"])
        return None if value is None else float(value)

    # -- reads ----------------------------------------------------------------------------

    async def get(
        self, tenant_id: str, instance_id: uuid.UUID, *, within: Any = None
    ) -> ProcessInstance:
        """The instance (read on ``within``, a connection of the caller, when given)."""
        reader: Any = within if within is not None else self.db
        row = await reader.fetchrow(QUERIES["get_instance"], instance_id, tenant_id)
        if row is None:
            raise ProcessNotFound(instance_id)
        instance = to_instance(row)
        if row["state"] is None:
            return instance
        children = await reader.fetch(QUERIES["child_incidents"], instance_id)
        found = [
            ChildIncident(c["proc_inst_id"], incident)
            for c in children
            if c["state"] is not None
            for incident in InstanceState.from_json(c["state"]).incidents.values()
        ]
        return dataclasses.replace(instance, child_incidents=found) if found else instance

    async def list(
        self,
        tenant_id: str,
        *,
        proc_def_id: str | None,
        status: InstanceStatus | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> builtins.list[ProcessInstance]:
        rows = await self.db.fetch(
            QUERIES["list_instances"],
            tenant_id,
            proc_def_id,
            None if status is None else status.value,
            None if before is None else before[0],
            None if before is None else before[1],
            limit,
        )
        return [to_instance(r) for r in rows]

    async def history(
        self, tenant_id: str, instance_id: uuid.UUID, *, after_seq: int, limit: int
    ) -> builtins.list[HistoryLine]:
        rows = await self.db.fetch(
            QUERIES["list_history"], instance_id, tenant_id, after_seq, limit
        )
        if (
            not rows
            and await self.db.fetchrow(QUERIES["get_instance"], instance_id, tenant_id) is None
        ):
            raise ProcessNotFound(instance_id)
        return [
            HistoryLine(r["seq"], r["kind"], r["node_id"], r["activation"], r["data"], r["at"])
            for r in rows
        ]

    async def worklist(
        self,
        tenant_id: str,
        *,
        user: str | None,
        role: str | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> builtins.list[Task]:
        rows = await self.db.fetch(
            QUERIES["worklist"],
            tenant_id,
            user,
            role,
            None if before is None else before[0],
            None if before is None else before[1],
            limit,
        )
        return [to_task(r) for r in rows]


def to_instance(row: Mapping[str, Any]) -> ProcessInstance:
    state = row["state"]
    incidents = list(InstanceState.from_json(state).incidents.values()) if state is not None else []
    return ProcessInstance(
        id=row["proc_inst_id"],
        tenant_id=row["tenant_id"],
        proc_def_id=row["proc_def_id"],
        version=row["proc_def_version"],
        name=row["proc_inst_name"],
        status=instance_status(str(row["status"])),
        current_activity_ids=list(row["current_activity_ids"]),
        variables=dict(row["variables_data"]),
        incidents=incidents,
        parent_id=row["parent_proc_inst_id"],
        start_date=row["start_date"],
        end_date=row["end_date"],
    )


def _raise_rejected(outcome: Outcome, instance_id: uuid.UUID) -> None:
    if outcome.rejected is not None:
        raise ProcessEventRejected(instance_id, str(outcome.rejected)) from outcome.rejected

"""The execution layer of processes: starts instances and advances them, one transaction per
step, on top of the pure engine (:mod:`processgpt.domain.process.engine`).

Every method that changes an instance runs one step of the engine with the instance row
locked (``FOR UPDATE``) and applies all of it in the same transaction (work items, timers,
child instances, history, the instance's columns), or nothing. Nothing slow runs under that
lock: text conditions are judged by a judge task (an agent's task) before the step that needs
them commits (see :mod:`processgpt.db.process_instances`).

Agent steps end through the worker's batch write (:mod:`processgpt.runtime.writer`), which
runs the step of every process task whose write it commits in the same transaction; this
service is what the API and the CLI call for everything else.

Notifications: every committed step NOTIFYs channel ``processgpt_process`` with the payload
``<instance id>:<last history seq>:<status>`` (one per instance and step), so a process
stream reads the new history lines (``history(after_seq=…)``) when it is told.

Errors (each leaves everything unchanged):

* :class:`~processgpt.domain.errors.ProcessNotFound` / :class:`~processgpt.domain.errors.
  TaskNotFound`: no such instance or task for the tenant (another tenant's are not found);
* :class:`~processgpt.domain.errors.ProcessDefinitionNotFound`: no such definition/version;
* :class:`~processgpt.domain.errors.InvalidTransition` (409, ``invalid_state``): the event
  does not apply (a task not open, an instance finished, no incident of that id, no token
  waiting for that message);
* :class:`~processgpt.domain.errors.InvalidInput` (422): bad input (form data that does not
  fit the task's form, a migration mapping that cannot apply).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from processgpt.db.database import Database
from processgpt.db.process_instances import ProcessInstances
from processgpt.db.process_steps import StepSettings
from processgpt.domain.process.instance import HistoryLine, ProcessInstance
from processgpt.domain.process.state import InstanceStatus
from processgpt.domain.task import Task
from processgpt.tracing import TraceContext

DEFAULT_JUDGE_AGENT = "llm"
"""The agent that judges text conditions unless ``PROCESSGPT_PROCESS_JUDGE_AGENT`` says
otherwise."""
DEFAULT_STEP_AGENT = "llm"
"""The agent of an agent step whose activity names neither an agent nor an orchestration."""


class ProcessService:
    """Starts, reads and advances process instances of a tenant (see the module)."""

    def __init__(
        self,
        db: Database,
        *,
        judge_agent: str = DEFAULT_JUDGE_AGENT,
        default_agent: str = DEFAULT_STEP_AGENT,
    ) -> None:
        self.db = db
        self.judge_agent = judge_agent
        self.default_agent = default_agent
        self.instances = ProcessInstances(
            db, settings=StepSettings(judge_agent=judge_agent, default_agent=default_agent)
        )

    async def start(
        self,
        tenant_id: str,
        proc_def_id: str,
        *,
        version: int | None = None,
        variables: Mapping[str, Any] | None = None,
        roles: Mapping[str, str] | None = None,
        name: str = "",
        idempotency_key: str | None = None,
        start_node: str | None = None,
        within: Any = None,
        trace: TraceContext = (None, None),
    ) -> tuple[ProcessInstance, bool]:
        """Start an instance of ``proc_def_id`` pinned to ``version`` (the latest when None):
        the instance, its first step (work items, timers, history) in one transaction. The
        bool says whether it was created: the same ``idempotency_key`` again (per tenant)
        returns the instance it started, created False, whatever the other arguments.
        ``start_node``: the start event its token leaves (a timer start's schedule names its
        own); None: the engine's default start. ``within``: a connection in a transaction of
        the caller (a schedule's tick): the instance and its first step are written in it and
        commit or roll back with it. ``trace``: the W3C trace context of what starts it (its
        tasks' runs link to it)."""
        started = await self.instances.start(
            tenant_id,
            proc_def_id,
            version=version,
            variables=dict(variables or {}),
            roles=dict(roles or {}),
            name=name,
            idempotency_key=idempotency_key,
            start_node=start_node,
            within=within,
            trace=trace,
        )
        if within is not None:
            return await self.instances.get(tenant_id, started.instance_id, within=within), (
                started.created
            )
        return await self.instances.get(tenant_id, started.instance_id), started.created

    async def get(self, tenant_id: str, id: uuid.UUID) -> ProcessInstance:
        """The instance; :class:`ProcessNotFound` when the tenant has none of that id."""
        return await self.instances.get(tenant_id, id)

    async def list(
        self,
        tenant_id: str,
        *,
        proc_def_id: str | None = None,
        status: InstanceStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, uuid.UUID] | None = None,
    ) -> builtins.list[ProcessInstance]:
        """The tenant's instances, newest first (by start date, then id); ``before`` is the
        ``(start_date, id)`` of the last instance of the previous page."""
        return await self.instances.list(
            tenant_id, proc_def_id=proc_def_id, status=status, limit=limit, before=before
        )

    async def history(
        self, tenant_id: str, id: uuid.UUID, *, after_seq: int = 0, limit: int = 1000
    ) -> builtins.list[HistoryLine]:
        """The instance's history lines with ``seq > after_seq``, in order, at most ``limit``;
        :class:`ProcessNotFound` when the tenant has no such instance."""
        return await self.instances.history(tenant_id, id, after_seq=after_seq, limit=limit)

    async def complete_task(
        self,
        tenant_id: str,
        task_id: uuid.UUID,
        output: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> Task:
        """Complete a person's work item (status TODO → DONE with ``output``) and run the step
        it ends, in one transaction; the task as it is then.

        A task that is not TODO: :class:`InvalidTransition` (409), unless it was completed
        before with the same ``idempotency_key``: then the same result, nothing changes. A task
        with a form: ``output`` must fit the form's fields, else :class:`InvalidInput` (422),
        nothing changed. A task outside a process may be completed too (no step)."""
        return await self.instances.complete_task(tenant_id, task_id, output, idempotency_key)

    async def cancel(self, tenant_id: str, id: uuid.UUID, reason: str = "") -> ProcessInstance:
        """Cancel the instance, its open tasks, timers and child instances in one
        transaction. A finished instance: :class:`InvalidTransition`."""
        await self.instances.cancel(tenant_id, id, reason)
        return await self.instances.get(tenant_id, id)

    async def send_message(
        self, tenant_id: str, id: uuid.UUID, name: str, payload: Mapping[str, Any]
    ) -> ProcessInstance:
        """Deliver a message to the oldest token waiting for ``name`` (``payload`` merged
        into the variables). No token waits for it: :class:`InvalidTransition`."""
        await self.instances.send_message(tenant_id, id, name, payload)
        return await self.instances.get(tenant_id, id)

    async def send_signal(
        self, tenant_id: str, id: uuid.UUID, name: str, payload: Mapping[str, Any]
    ) -> ProcessInstance:
        """Deliver a signal to every token of the instance waiting for ``name`` (``payload``
        merged into the variables when one waits). A signal is a broadcast: none waiting is
        not an error, and nothing changes then."""
        await self.instances.send_signal(tenant_id, id, name, payload)
        return await self.instances.get(tenant_id, id)

    async def resolve_incident(
        self,
        tenant_id: str,
        id: uuid.UUID,
        incident_id: str,
        *,
        variables: Mapping[str, Any] | None = None,
    ) -> ProcessInstance:
        """Retry where the incident stopped (a failed step runs again as a new activation; a
        gateway re-evaluates), after merging ``variables``. Unknown incident:
        :class:`InvalidTransition`."""
        await self.instances.resolve_incident(tenant_id, id, incident_id, variables or {})
        return await self.instances.get(tenant_id, id)

    async def migrate(
        self,
        tenant_id: str,
        id: uuid.UUID,
        *,
        to_version: int,
        mapping: Mapping[str, str],
    ) -> ProcessInstance:
        """Move the instance to ``to_version`` of its definition, its waiting steps renamed by
        ``mapping`` (old node id → new); recorded in its history. A mapping that cannot apply:
        :class:`InvalidInput` listing every problem; nothing changed."""
        await self.instances.migrate(tenant_id, id, to_version, mapping)
        return await self.instances.get(tenant_id, id)

    async def worklist(
        self,
        tenant_id: str,
        *,
        user: str | None = None,
        role: str | None = None,
        limit: int = 50,
        before: tuple[datetime, uuid.UUID] | None = None,
    ) -> builtins.list[Task]:
        """Open human work items (status TODO) of the tenant, newest first; ``user`` keeps
        those assigned to the user (``user_id`` lists them), ``role`` those of the role.
        ``before``: ``(created_at, id)`` of the last item of the previous page."""
        return await self.instances.worklist(
            tenant_id, user=user, role=role, limit=limit, before=before
        )

    async def fire_due_timers(self, limit: int = 100) -> int:
        """Fire up to ``limit`` due timers (any tenant), each in the step of its instance;
        the number fired. Several workers may call it at once: each timer fires once."""
        return await self.instances.fire_due_timers(limit)

    async def seconds_until_next_timer(self) -> float | None:
        """Seconds until the next timer is due (0 or less: due now); None when none is
        armed. For the worker's timer loop."""
        return await self.instances.seconds_until_next_timer()

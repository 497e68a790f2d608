"""The schedule loop: fires due schedules, each tick once across any number of workers.

Every worker runs one loop (owned by the worker's exit stack, see
:mod:`processgpt.runtime.worker`). A round claims up to ``batch`` due schedules in one
transaction (``FOR UPDATE SKIP LOCKED``: a schedule another worker is firing is skipped) and,
for each, starts its work and moves ``next_run_at`` to the first tick after now, then commits.

Exactly once per tick:

* a task schedule queues its task inside that transaction (a savepoint), so the task and the
  schedule's next tick commit together or not at all;
* a process schedule starts its instance through :class:`ProcessStarter` in that
  transaction too (``within``): the instance, its first step and the next tick commit
  together. Its idempotency key ``schedule:<id>:<tick>`` is a second guard: the same tick
  can never start two instances, even through a starter that commits on its own.

Ticks missed while no worker ran (the database was down, every worker stopped) run once: the
next tick is the first after now, and the number skipped is logged and added to
``schedules.skipped``. A tick whose work cannot start for a reason that would not change on a
retry (the definition was deleted, the agent is unknown) is recorded in ``last_error`` and
the schedule moves on; a database error rolls the round back and it is tried again.

Between rounds the loop sleeps until the earliest next tick (at most ``max_sleep`` seconds),
and wakes early when a schedule is made or changed (NOTIFY ``processgpt_schedules``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from processgpt import tracing
from processgpt.db.retry import retry_transient
from processgpt.db.schedules import DueTicks, ScheduleRepository
from processgpt.db.tasks import PendingGate, TaskRepository
from processgpt.domain.errors import DatabaseUnavailable, ProcessGPTError
from processgpt.domain.process.instance import ProcessInstance
from processgpt.domain.schedule import Schedule, next_tick, ticks_between
from processgpt.domain.task import TaskSubmission

log = logging.getLogger(__name__)


class ProcessStarter(Protocol):
    """What starts a schedule's process instance (:class:`~processgpt.runtime.
    process_service.ProcessService` is one): the same ``idempotency_key`` again must return
    the instance it started, not start another; ``within`` is the tick's connection, in its
    transaction."""

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
        trace: tracing.TraceContext = (None, None),
    ) -> tuple[ProcessInstance, bool]: ...


def tick_key(schedule: Schedule) -> str:
    """The idempotency key of the work of ``schedule``'s due tick."""
    assert schedule.next_run_at is not None
    return f"schedule:{schedule.id}:{schedule.next_run_at.isoformat()}"


class ScheduleLoop:
    """Fires due schedules until cancelled (see the module)."""

    def __init__(
        self,
        schedules: ScheduleRepository,
        tasks: TaskRepository,
        processes: ProcessStarter,
        *,
        batch: int = 20,
        max_sleep: float = 30.0,
        gate: PendingGate | None = None,
    ) -> None:
        self.schedules = schedules
        self.tasks = tasks
        self.processes = processes
        self.gate = gate
        """Set: a tick whose tenant is at its pending limit starts nothing (recorded as the
        tick's error, ``too_many_pending``), as an API create would be refused."""
        self.batch = batch
        self.max_sleep = max_sleep
        self._wake = asyncio.Event()
        self.fired = 0
        """Ticks this loop started the work of (for tests and logs)."""

    def wake(self) -> None:
        """Look for due schedules now (a schedule was made or changed; a reconnect)."""
        self._wake.set()

    async def run(self) -> None:
        """Fire and sleep until cancelled. Database errors are retried with a backoff (never
        raised); anything else is a bug and is raised."""
        while True:
            self._wake.clear()
            claimed = await retry_transient(self.fire_due, what="firing due schedules")
            if claimed >= self.batch:
                continue  # more may be due
            delay = await retry_transient(
                self.schedules.seconds_until_next, what="reading the next schedule"
            )
            sleep = self.max_sleep if delay is None else min(max(delay, 0.0), self.max_sleep)
            if sleep > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=sleep)

    async def fire_due(self) -> int:
        """One round: fire every schedule due now, up to ``batch``, in one transaction; the
        number claimed."""
        async with self.schedules.due(self.batch) as due:
            for schedule in due.schedules:
                await self._fire(due, schedule)
        return len(due.schedules)

    async def _fire(self, due: DueTicks, schedule: Schedule) -> None:
        assert schedule.next_run_at is not None  # claimed rows are enabled, so they have one
        error: str | None = None
        try:
            async with due.savepoint():
                await self._start(due, schedule)
        except DatabaseUnavailable:
            raise  # the round rolls back and is tried again
        except ProcessGPTError as exc:  # the work cannot start: recorded, the schedule goes on
            error = f"{exc.code}: {exc.message}"
            log.warning(
                "schedule tick could not start its work schedule=%s tenant=%s error=%s",
                schedule.id,
                schedule.tenant_id,
                exc.code,
            )
        following = next_tick(schedule.cadence, due.now)
        skipped = ticks_between(schedule.cadence, schedule.next_run_at, due.now)
        await due.advance(schedule, following, skipped=skipped, started=error is None, error=error)
        if error is None:
            self.fired += 1
        if skipped:
            log.info(
                "schedule fired once for missed ticks schedule=%s tenant=%s skipped=%d due=%s",
                schedule.id,
                schedule.tenant_id,
                skipped,
                schedule.next_run_at.isoformat(),
            )
        else:
            log.debug("schedule fired schedule=%s next=%s", schedule.id, following)

    async def _start(self, due: DueTicks, schedule: Schedule) -> None:
        if self.gate is None:
            await self._start_work(due, schedule)
            return
        async with self.gate.admit(schedule.tenant_id, conn=due.conn):
            await self._start_work(due, schedule)

    async def _start_work(self, due: DueTicks, schedule: Schedule) -> None:
        # A tick starts a trace of its own (there is no request): the work it creates stores
        # the tick's context, so the runs of that work link to it.
        attributes = {"processgpt.schedule_id": str(schedule.id)}
        with tracing.span("schedule.tick", attributes):
            await self._create_work(due, schedule, tracing.current_context())

    async def _create_work(
        self, due: DueTicks, schedule: Schedule, trace: tracing.TraceContext
    ) -> None:
        key = tick_key(schedule)
        if schedule.target == "task":
            assert schedule.task is not None  # the schema's CHECK
            sub = TaskSubmission.model_validate(
                {**schedule.task, "idempotency_key": key}
            ).model_copy(update={"traceparent": trace[0], "tracestate": trace[1]})
            await self.tasks.submit(schedule.tenant_id, sub, conn=due.conn)
            return
        assert schedule.proc_def_id is not None  # the schema's CHECK
        await self.processes.start(
            schedule.tenant_id,
            schedule.proc_def_id,
            version=schedule.version,
            variables=schedule.variables,
            roles=schedule.roles,
            name=schedule.name,
            idempotency_key=key,
            start_node=schedule.start_node,
            within=due.conn,
            trace=trace,
        )

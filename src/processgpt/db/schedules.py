"""Schedules (``schedules``, migration 0019): made, read and changed per tenant, and claimed
tick by tick by the workers' schedule loops (:mod:`processgpt.runtime.schedules`).

Every change NOTIFYs ``processgpt_schedules`` in its transaction, so the loops recompute when
they next wake. Next ticks are computed from the database's clock (``now()``), never a
worker's, so workers with skewed clocks agree on what is due.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import InvalidInput, NameTaken, ScheduleNotFound
from processgpt.domain.process.model import ProcessGraph
from processgpt.domain.schedule import (
    Cadence,
    Schedule,
    ScheduleSpec,
    check_cron,
    next_tick,
    timer_starts,
    zone,
)

SCHEDULES_CHANNEL = "processgpt_schedules"
"""NOTIFY channel: a schedule was made or changed (empty payload)."""


@dataclass(frozen=True)
class DueTicks:
    """Due schedules claimed in one transaction (see :meth:`ScheduleRepository.due`): until
    the block ends no other worker sees them. ``now``: the transaction's time."""

    conn: asyncpg.Connection
    now: datetime
    schedules: Sequence[Schedule]

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[asyncpg.Connection]:
        """A nested transaction: an error leaving the block undoes only what it wrote."""
        async with self.conn.transaction():
            yield self.conn

    async def advance(
        self,
        schedule: Schedule,
        next_run_at: datetime | None,
        *,
        skipped: int,
        started: bool,
        error: str | None = None,
    ) -> None:
        """Record the tick: the next one (None: the schedule is done and disabled), the ticks
        missed, whether its work started and why not."""
        await self.conn.execute(
            QUERIES["advance_schedule"],
            schedule.id,
            next_run_at,
            skipped,
            started,
            None if error is None else error[:2000],
        )


class ScheduleRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the API's side ---------------------------------------------------------------------

    async def create(self, tenant_id: str, spec: ScheduleSpec) -> Schedule:
        """Store a schedule whose first tick is the first of its cadence after now. Raises
        :class:`InvalidCron` / :class:`UnknownTimeZone` for a bad cadence, :class:`NameTaken`
        when the tenant has a schedule of that name, :class:`InvalidInput` when the process
        definition (or its version) does not exist; nothing is stored then."""
        spec = _checked(spec)
        try:
            async with self.db.transaction() as conn:
                if spec.proc_def_id is not None:
                    await _check_definition(conn, tenant_id, spec.proc_def_id, spec.version)
                now = await conn.fetchval(QUERIES["schedule_now"])
                row = await _insert(conn, tenant_id, spec, now)
                await conn.execute(QUERIES["notify_schedules"])
        except asyncpg.exceptions.UniqueViolationError:
            raise NameTaken(f"a schedule named {spec.name!r} exists") from None
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise InvalidInput(f"tenant {tenant_id!r} does not exist") from None
        return Schedule.from_row(row)

    async def get(self, tenant_id: str, schedule_id: uuid.UUID) -> Schedule:
        row = await self.db.fetchrow(QUERIES["get_schedule"], tenant_id, schedule_id)
        if row is None:
            raise ScheduleNotFound(schedule_id)
        return Schedule.from_row(row)

    async def list(self, tenant_id: str, *, after: str = "", limit: int = 100) -> list[Schedule]:
        """The tenant's schedules by name, after ``after``."""
        rows = await self.db.fetch(QUERIES["list_schedules"], tenant_id, after, limit)
        return [Schedule.from_row(r) for r in rows]

    async def update(
        self,
        tenant_id: str,
        schedule_id: uuid.UUID,
        *,
        enabled: bool | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        variables: dict[str, Any] | None = None,
    ) -> Schedule:
        """Change a schedule (None: kept). Enabling it again, or changing its cron expression
        or zone, moves its next tick to the first after now; disabling clears it. A schedule
        without a cron expression takes neither ``cron`` nor ``timezone``, and one with no
        tick left cannot be enabled (:class:`InvalidInput`)."""
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(QUERIES["lock_schedule"], tenant_id, schedule_id)
            if row is None:
                raise ScheduleNotFound(schedule_id)
            old = Schedule.from_row(row)
            if (cron is not None or timezone is not None) and old.cadence.cron is None:
                raise InvalidInput("this schedule has no cron expression to change", field="cron")
            cadence = Cadence(
                cron=check_cron(cron or old.cadence.cron, timezone or old.cadence.timezone)
                if old.cadence.cron is not None
                else None,
                timezone=timezone or old.cadence.timezone,
                cycle=old.cadence.cycle,
            )
            now_enabled = old.enabled if enabled is None else enabled
            next_run_at = old.next_run_at
            if not now_enabled:
                next_run_at = None
            elif not old.enabled or cadence != old.cadence:
                next_run_at = next_tick(cadence, await conn.fetchval(QUERIES["schedule_now"]))
                if next_run_at is None:
                    raise InvalidInput("this schedule has no tick left to enable", field="enabled")
            updated = await conn.fetchrow(
                QUERIES["update_schedule"],
                tenant_id,
                schedule_id,
                now_enabled,
                cadence.cron,
                cadence.timezone,
                old.variables if variables is None else variables,
                next_run_at,
            )
            await conn.execute(QUERIES["notify_schedules"])
        return Schedule.from_row(updated)

    async def delete(self, tenant_id: str, schedule_id: uuid.UUID) -> None:
        if await self.db.fetchval(QUERIES["delete_schedule"], tenant_id, schedule_id) is None:
            raise ScheduleNotFound(schedule_id)

    # -- the workers' side ------------------------------------------------------------------

    @asynccontextmanager
    async def due(self, limit: int) -> AsyncIterator[DueTicks]:
        """Claim up to ``limit`` due schedules (any tenant, earliest first) in a transaction
        that commits when the block ends (rolled back, with every tick it recorded, when the
        block raises). Schedules another worker holds are skipped."""
        async with self.db.transaction() as conn:
            now = await conn.fetchval(QUERIES["schedule_now"])
            rows = await conn.fetch(QUERIES["claim_due_schedules"], limit)
            yield DueTicks(conn, now, [Schedule.from_row(r) for r in rows])

    async def seconds_until_next(self) -> float | None:
        """Seconds until the earliest enabled tick (0 or less: due); None when none is."""
        value = await self.db.fetchval(QUERIES["seconds_until_next_schedule"])
        return None if value is None else float(value)


async def replace_definition_schedules(
    conn: asyncpg.Connection,
    tenant_id: str,
    graph: ProcessGraph,
    version: int,
    published_at: datetime,
) -> int:
    """In the publish's transaction: the schedules of the definition's earlier timer start
    events are dropped and one per timer start event of ``graph`` (version ``version``) is
    made, pinned to that version and starting at that node; the number made. A one-shot
    start (a date) that the earlier version's schedule of the same start event already fired
    at or after its time is made disabled: republishing a definition does not fire a past
    date again. Raises :class:`InvalidInput` for a cycle the schedules cannot run."""
    replaced = await conn.fetch(QUERIES["delete_definition_schedules"], tenant_id, graph.id)
    fired = {r["name"]: r["last_run_at"] for r in replaced if r["once"] and r["last_run_at"]}
    made = 0
    for start in timer_starts(graph, published_at):
        name = f"{graph.id}:{start.node_id}"[:300]
        once = start.cadence.cron is None and start.cadence.cycle is None
        last = fired.get(name) if once else None
        done = last is not None and start.first_run_at is not None and start.first_run_at <= last
        spec = ScheduleSpec(
            name=name,
            cadence=start.cadence,
            target="process",
            proc_def_id=graph.id,
            version=version,
            start_node=start.node_id,
            enabled=start.first_run_at is not None and not done,
            source="definition",
            first_run_at=start.first_run_at,
        )
        await _insert(conn, tenant_id, spec, published_at, last)
        made += 1
    await conn.execute(QUERIES["notify_schedules"])
    return made


def _checked(spec: ScheduleSpec) -> ScheduleSpec:
    """``spec`` with its cron expression normalised; its zone and cron checked."""
    zone(spec.cadence.timezone)
    if spec.cadence.cron is None:
        return spec
    cron = check_cron(spec.cadence.cron, spec.cadence.timezone)
    return dataclasses.replace(spec, cadence=dataclasses.replace(spec.cadence, cron=cron))


async def _check_definition(
    conn: asyncpg.Connection, tenant_id: str, proc_def_id: str, version: int | None
) -> None:
    found = await conn.fetchval(QUERIES["proc_def_exists"], tenant_id, proc_def_id, version)
    if not found:
        what = f"version {version} of " if version is not None else ""
        raise InvalidInput(
            f"{what}process definition {proc_def_id!r} not found", field="process.proc_def_id"
        )


async def _insert(
    conn: asyncpg.Connection,
    tenant_id: str,
    spec: ScheduleSpec,
    now: datetime,
    last_run_at: datetime | None = None,
) -> asyncpg.Record:
    first = spec.first_run_at if spec.first_run_at is not None else next_tick(spec.cadence, now)
    enabled = spec.enabled and first is not None
    row = await conn.fetchrow(
        QUERIES["insert_schedule"],
        tenant_id,
        spec.name,
        spec.source,
        spec.cadence.cron,
        spec.cadence.timezone,
        spec.cadence.cycle,
        spec.target,
        spec.proc_def_id,
        spec.version,
        spec.start_node,
        spec.task,
        spec.variables,
        spec.roles,
        enabled,
        first if enabled else None,
        last_run_at,
    )
    assert row is not None  # INSERT … RETURNING
    return row

"""When schedules fire: cron expressions in a time zone, ISO 8601 repeating intervals, once.

Pure: every function takes the moment it computes from. A schedule's :class:`Cadence` is one of

* ``cron`` + ``timezone``: a five-field cron expression (minute hour day-of-month month
  day-of-week; ``*/5``, ranges, lists, names, ``L``, ``#``) or an alias (``@hourly``,
  ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``), read in the IANA zone ``timezone``.
  Ticks follow the wall clock of the zone across daylight-saving changes as cron does: a
  time that does not exist that day (spring forward) fires at the first minute after the gap,
  a time that exists twice (fall back) fires once at its first occurrence, except for
  expressions that fire every hour or more often, which fire on both. Parsed by ``cronsim``.
* ``cycle``: ``R[n]/<start>/<duration>`` (ISO 8601 repeating interval, BPMN ``timeCycle``):
  ticks at start, start + duration, …, ``n`` of them (unbounded without ``n``).
* neither: once (the first tick is given when the schedule is made; there is no next).

:func:`next_tick` is the first tick strictly after a moment; the firing loop asks for the first
tick after *now*, so ticks missed while nothing ran are not run one by one
(:func:`ticks_between` counts them for the log).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from processgpt.domain.errors import (
    DefinitionProblem,
    InvalidCron,
    InvalidInput,
    ProcessDefinitionInvalid,
    UnknownTimeZone,
)
from processgpt.domain.process.model import NodeKind, ProcessGraph, TimerSpec
from processgpt.domain.process.timers import TimerError, add_months, parse_date, split_duration

_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_CYCLE = re.compile(r"R(?P<count>\d*)/(?P<rest>.+)")
_MAX_STEPS = 100_000
"""The most steps a cycle's computation walks (a monthly cycle over 8,000 years): past it, a
cycle's next tick is computed as none."""
MAX_COUNTED = 1_000
"""Missed cron ticks are counted up to this many (walking cron ticks costs some 40 µs each,
and the count only informs: a minutely schedule down for a day says 1,000)."""


@dataclass(frozen=True)
class Cadence:
    """When a schedule fires (see the module): ``cron`` (read in ``timezone``), ``cycle``, or
    neither (once)."""

    cron: str | None = None
    timezone: str = "UTC"
    cycle: str | None = None

    @property
    def once(self) -> bool:
        return self.cron is None and self.cycle is None


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`UnknownTimeZone` when there is none."""
    if not name or len(name) > 100 or name.startswith(("/", ".")) or ".." in name:
        raise UnknownTimeZone(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownTimeZone(name) from None


def check_cron(expression: str, timezone: str = "UTC") -> str:
    """``expression`` as stored (aliases spelled out, fields single-spaced); raises
    :class:`InvalidCron` when cron cannot read it or it never fires, and
    :class:`UnknownTimeZone` for a bad zone."""
    tz = zone(timezone)
    text = " ".join(expression.split())
    text = _ALIASES.get(text.lower(), text)
    if len(text.split(" ")) != 5:
        raise InvalidCron(
            f"cron expression {expression[:200]!r} needs five fields "
            "(minute hour day-of-month month day-of-week) or an alias such as @daily"
        )
    try:
        next(CronSim(text, datetime(2000, 1, 1, tzinfo=tz)))
    except CronSimError as exc:
        raise InvalidCron(f"cron expression {text!r}: {exc}") from None
    except StopIteration:
        raise InvalidCron(f"cron expression {text!r} never fires") from None
    return text


@dataclass(frozen=True)
class _Cycle:
    count: int | None
    start: datetime
    months: int
    exact: timedelta

    def at(self, k: int) -> datetime:
        return add_months(self.start, k * self.months) + k * self.exact


def parse_cycle(text: str) -> tuple[int | None, datetime | None, str]:
    """``R[n]/[start/]duration`` as (n or None, start or None, duration); raises
    :class:`InvalidInput` for anything else (``R/duration/end`` included) and for a duration
    that is not positive."""
    match = _CYCLE.fullmatch(text.strip())
    parts = match["rest"].split("/") if match else []
    if match is None or len(parts) not in (1, 2) or not parts[-1].startswith("P"):
        raise InvalidInput(
            f"timer cycle {text!r} is not R[n]/[start/]duration (R3/2030-01-01T09:00:00Z/P1D)",
            field="cycle",
        )
    try:
        months, exact = split_duration(parts[-1])
        start = parse_date(parts[0]) if len(parts) == 2 else None
    except TimerError as exc:
        raise InvalidInput(f"timer cycle {text!r}: {exc.message}", field="cycle") from None
    if months <= 0 and exact <= timedelta(0):
        raise InvalidInput(f"timer cycle {text!r} repeats with no interval", field="cycle")
    count = int(match["count"]) if match["count"] else None
    return count, start, parts[-1]


def anchored_cycle(text: str, now: datetime) -> str:
    """The cycle with its start written in: a cycle without one first fires one interval
    after ``now`` (as BPMN engines run ``R3/PT10H``: three times, the first after 10 hours)."""
    count, start, duration = parse_cycle(text)
    if start is not None:
        return text.strip()
    months, exact = split_duration(duration)
    first = add_months(now.astimezone(UTC), months) + exact
    prefix = f"R{count}" if count is not None else "R"
    return f"{prefix}/{first.isoformat()}/{duration}"


def _cycle(text: str) -> _Cycle:
    count, start, duration = parse_cycle(text)
    if start is None:
        raise InvalidInput(f"timer cycle {text!r} has no start (anchor it first)", field="cycle")
    months, exact = split_duration(duration)
    return _Cycle(count, start, months, exact)


def _cycle_index_after(cycle: _Cycle, after: datetime) -> int | None:
    """The index of the first tick strictly after ``after`` (not bounded by the count)."""
    if cycle.start > after:
        return 0
    if cycle.months == 0:
        return (after - cycle.start) // cycle.exact + 1
    k = 0
    while cycle.at(k) <= after:
        k += 1
        if k > _MAX_STEPS:
            return None
    return k


def next_tick(cadence: Cadence, after: datetime) -> datetime | None:
    """The first tick strictly after ``after`` (aware, in UTC); None when there is none (a
    once schedule, a cycle whose repetitions are used up)."""
    if cadence.cron is not None:
        local = after.astimezone(zone(cadence.timezone))
        try:
            return next(CronSim(cadence.cron, local)).astimezone(UTC)
        except StopIteration:
            return None
    if cadence.cycle is not None:
        cycle = _cycle(cadence.cycle)
        k = _cycle_index_after(cycle, after)
        if k is None or (cycle.count is not None and k >= cycle.count):
            return None
        return cycle.at(k).astimezone(UTC)
    return None


def ticks_between(cadence: Cadence, after: datetime, until: datetime) -> int:
    """How many ticks lie in (``after``, ``until``]; cron ticks are counted up to
    :data:`MAX_COUNTED`."""
    if cadence.cycle is not None:
        cycle = _cycle(cadence.cycle)
        first = _cycle_index_after(cycle, after)
        last = _cycle_index_after(cycle, until)
        if first is None or last is None:
            return _MAX_STEPS
        if cycle.count is not None:
            first, last = min(first, cycle.count), min(last, cycle.count)
        return max(0, last - first)
    if cadence.cron is None:
        return 0
    count = 0
    for tick in CronSim(cadence.cron, after.astimezone(zone(cadence.timezone))):
        if tick > until or count >= MAX_COUNTED:
            break
        count += 1
    return count


@dataclass(frozen=True)
class TimerStart:
    """A timer start event of a definition as a schedule: fire ``cadence`` from
    ``first_run_at`` (None: it will never fire, e.g. a cycle that is over)."""

    node_id: str
    cadence: Cadence
    first_run_at: datetime | None


def timer_starts(graph: ProcessGraph, published_at: datetime) -> list[TimerStart]:
    """The schedules of ``graph``'s timer start events, published at ``published_at``: a
    ``date`` fires once at that date (at once if it is past), a ``duration`` once that long
    after the publish, a ``cycle`` as a cron expression (read in UTC) or a repeating interval
    (one without a start first fires one interval after the publish). Raises
    :class:`ProcessDefinitionInvalid` naming each timer start that cannot run (a cycle of
    another form than ``R[n]/[start/]duration`` or five-field cron, a zero interval)."""
    found: list[TimerStart] = []
    problems: list[DefinitionProblem] = []
    for node in graph.nodes:
        if node.kind is not NodeKind.START or node.timer is None:
            continue
        try:
            found.append(_timer_start(node.id, node.timer, published_at))
        except InvalidInput as exc:
            problems.append(DefinitionProblem(node.id, exc.message))
    if problems:
        raise ProcessDefinitionInvalid(problems)
    return found


def _timer_start(node_id: str, timer: TimerSpec, published_at: datetime) -> TimerStart:
    if timer.date is not None:
        return TimerStart(node_id, Cadence(), parse_date(timer.date).astimezone(UTC))
    if timer.duration is not None:
        months, exact = split_duration(timer.duration)
        return TimerStart(node_id, Cadence(), add_months(published_at, months) + exact)
    assert timer.cycle is not None  # validated at publish: exactly one is set
    if timer.cycle.startswith("R"):
        cadence = Cadence(cycle=anchored_cycle(timer.cycle, published_at))
    else:
        cadence = Cadence(cron=check_cron(timer.cycle))
    return TimerStart(node_id, cadence, next_tick(cadence, published_at))


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule to store. ``target`` 'process' needs ``proc_def_id`` (``version`` None: the
    latest at each tick; ``start_node``: the start event its instances leave from), 'task'
    needs ``task`` (the fields of a task submission as JSON). ``first_run_at`` None: the first
    tick of ``cadence`` after now."""

    name: str
    cadence: Cadence
    target: str
    proc_def_id: str | None = None
    version: int | None = None
    start_node: str | None = None
    task: dict[str, Any] | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    source: str = "api"
    first_run_at: datetime | None = None


@dataclass(frozen=True)
class Schedule:
    """A stored schedule (see migration 0019)."""

    id: uuid.UUID
    tenant_id: str
    name: str
    source: str
    cadence: Cadence
    target: str
    proc_def_id: str | None
    version: int | None
    start_node: str | None
    task: dict[str, Any] | None
    variables: dict[str, Any]
    roles: dict[str, str]
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    runs: int
    skipped: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Schedule:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            name=row["name"],
            source=row["source"],
            cadence=Cadence(cron=row["cron"], timezone=row["timezone"], cycle=row["cycle"]),
            target=row["target"],
            proc_def_id=row["proc_def_id"],
            version=row["proc_def_version"],
            start_node=row["start_node"],
            task=row["task"],
            variables=row["variables"],
            roles=row["roles"],
            enabled=row["enabled"],
            next_run_at=row["next_run_at"],
            last_run_at=row["last_run_at"],
            runs=row["runs"],
            skipped=row["skipped"],
            last_error=row["last_error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

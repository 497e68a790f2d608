"""When a timer is due: ISO 8601 durations and dates, computed from a given ``now``.

Pure: the caller passes the moment the token arrived. Supported forms (what BPMN modelers
write in ``timeDuration`` / ``timeDate``):

* durations ``PnYnMnWnDTnHnMnS`` (each part optional, seconds may have a fraction); years and
  months are calendar steps (Jan 31 + P1M is the last day of February), the rest are exact;
* dates with a time and an offset (``2030-01-01T09:00:00Z``, ``...+02:00``); a date without an
  offset is UTC, a bare date (``2030-01-01``) is midnight UTC.

Anything else (repeating ``R3/PT1H`` cycles, negative durations) raises :class:`TimerError`,
which the engine reports as an incident and the publish-time validator as a problem.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

from processgpt.domain.errors import InvalidInput
from processgpt.domain.process.model import TimerSpec

_DURATION = re.compile(
    r"P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


class TimerError(InvalidInput):
    """A timer definition that is not a supported ISO 8601 duration or date."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="timer")


def due_at(spec: TimerSpec, now: datetime) -> datetime:
    """The moment a timer armed at ``now`` is due (timezone-aware, UTC when ``now`` is)."""
    if (spec.duration is None) == (spec.date is None):
        raise TimerError("a timer needs exactly one of a duration or a date")
    if spec.duration is not None:
        return add_duration(now, spec.duration)
    assert spec.date is not None
    return parse_date(spec.date)


def add_duration(start: datetime, text: str) -> datetime:
    months, exact = split_duration(text)
    return add_months(start, months) + exact


def split_duration(text: str) -> tuple[int, timedelta]:
    """An ISO 8601 duration as its calendar part (whole months: years are 12) and its exact
    part (weeks, days, hours, minutes, seconds)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise TimerError(f"timer duration {text!r} is not an ISO 8601 duration such as PT15M")
    parts = {k: v for k, v in match.groupdict().items() if v is not None}
    months = int(parts.get("years", 0)) * 12 + int(parts.get("months", 0))
    return months, timedelta(
        weeks=int(parts.get("weeks", 0)),
        days=int(parts.get("days", 0)),
        hours=int(parts.get("hours", 0)),
        minutes=int(parts.get("minutes", 0)),
        seconds=float(parts.get("seconds", 0)),
    )


def parse_date(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TimerError(f"timer date {text!r} is not an ISO 8601 date") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def add_months(start: datetime, months: int) -> datetime:
    """``start`` moved by whole calendar months (the day clipped to the month's last)."""
    if months == 0:
        return start
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    day = min(start.day, calendar.monthrange(year, month + 1)[1])
    return start.replace(year=year, month=month + 1, day=day)

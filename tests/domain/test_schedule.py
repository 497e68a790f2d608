"""domain/schedule.py: cron and zone validation, next ticks across DST, cycles, timer starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from processgpt.domain.errors import InvalidCron, InvalidInput, UnknownTimeZone
from processgpt.domain.process.model import Node, NodeKind, ProcessGraph, TimerSpec
from processgpt.domain.schedule import (
    Cadence,
    anchored_cycle,
    check_cron,
    next_tick,
    ticks_between,
    timer_starts,
    zone,
)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    "expression",
    ["61 * * * *", "* * *", "* * * * * *", "*/0 * * * *", "0 0 30 2 *", "hello", "", "@often"],
)
def test_bad_cron_is_refused_with_its_code(expression: str) -> None:
    with pytest.raises(InvalidCron) as caught:
        check_cron(expression)
    assert caught.value.code == "invalid_cron" and caught.value.field == "cron"


@pytest.mark.parametrize("name", ["Mars/Olympus", "../etc/passwd", "/etc/localtime", "", "x" * 200])
def test_unknown_zone_is_refused_with_its_code(name: str) -> None:
    with pytest.raises(UnknownTimeZone) as caught:
        check_cron("0 9 * * *", name)
    assert caught.value.code == "unknown_timezone"


def test_cron_is_stored_normalised() -> None:
    assert check_cron("  0   9 * *  MON-FRI ") == "0 9 * * MON-FRI"
    assert check_cron("@daily") == "0 0 * * *"
    assert zone("Europe/Berlin").key == "Europe/Berlin"


def test_next_tick_is_strictly_after() -> None:
    hourly = Cadence(cron="0 * * * *")
    assert next_tick(hourly, at(2026, 1, 1, 12)) == at(2026, 1, 1, 13)
    assert next_tick(hourly, at(2026, 1, 1, 12, 59, 59)) == at(2026, 1, 1, 13)


def test_cron_follows_the_wall_clock_of_its_zone_across_dst() -> None:
    nine = Cadence(cron="0 9 * * *", timezone="Europe/Berlin")
    # 29 March 2026: clocks go from 02:00 CET (UTC+1) to 03:00 CEST (UTC+2).
    assert next_tick(nine, at(2026, 3, 28, 9)) == at(2026, 3, 29, 7)
    assert next_tick(nine, at(2026, 3, 27, 9)) == at(2026, 3, 28, 8)
    # 02:30 does not exist on 8 March 2026 in New York: it fires at 03:00 EDT (07:00 UTC).
    gap = Cadence(cron="30 2 * * *", timezone="America/New_York")
    assert next_tick(gap, at(2026, 3, 7, 12)) == at(2026, 3, 8, 7)
    assert next_tick(gap, at(2026, 3, 8, 7)) == at(2026, 3, 9, 6, 30)
    # 02:30 exists twice on 25 October 2026 in Berlin: a daily job runs once, at the first.
    twice = Cadence(cron="30 2 * * *", timezone="Europe/Berlin")
    assert next_tick(twice, at(2026, 10, 24, 12)) == at(2026, 10, 25, 0, 30)
    assert next_tick(twice, at(2026, 10, 25, 0, 30)) == at(2026, 10, 26, 1, 30)


def test_ticks_between_counts_missed_ticks() -> None:
    every5 = Cadence(cron="*/5 * * * *")
    assert ticks_between(every5, at(2026, 1, 1), at(2026, 1, 1, 1)) == 12
    assert ticks_between(every5, at(2026, 1, 1), at(2026, 1, 1, 0, 4)) == 0
    assert ticks_between(Cadence(), at(2026, 1, 1), at(2027, 1, 1)) == 0
    assert ticks_between(Cadence(cron="* * * * *"), at(2026, 1, 1), at(2027, 1, 1)) == 1000


def test_cycles_repeat_from_their_start_and_end_after_their_count() -> None:
    cycle = Cadence(cycle="R3/2026-01-01T09:00:00Z/P1D")
    assert next_tick(cycle, at(2025, 12, 1)) == at(2026, 1, 1, 9)
    assert next_tick(cycle, at(2026, 1, 1, 9)) == at(2026, 1, 2, 9)
    assert next_tick(cycle, at(2026, 1, 3, 9)) is None
    assert ticks_between(cycle, at(2020, 1, 1), at(2030, 1, 1)) == 3
    monthly = Cadence(cycle="R/2026-01-31T00:00:00Z/P1M")
    assert next_tick(monthly, at(2026, 2, 1)) == at(2026, 2, 28)
    assert next_tick(monthly, at(2026, 2, 28)) == at(2026, 3, 31)


def test_a_cycle_without_start_first_fires_one_interval_after_the_anchor() -> None:
    text = anchored_cycle("R2/PT1H", at(2026, 1, 1))
    cycle = Cadence(cycle=text)
    assert next_tick(cycle, at(2026, 1, 1)) == at(2026, 1, 1, 1)
    assert next_tick(cycle, at(2026, 1, 1, 1)) == at(2026, 1, 1, 2)
    assert next_tick(cycle, at(2026, 1, 1, 2)) is None


@pytest.mark.parametrize("text", ["R/PT0S", "R3/PT1H/2026-01-01T00:00:00Z", "R/x", "P1D"])
def test_cycles_that_cannot_run_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        anchored_cycle(text, at(2026, 1, 1))


def test_once_has_no_next_tick() -> None:
    assert next_tick(Cadence(), at(2026, 1, 1)) is None


def _graph(*timers: TimerSpec) -> ProcessGraph:
    nodes = [Node(f"s{i}", NodeKind.START, timer=t) for i, t in enumerate(timers)]
    return ProcessGraph(id="p", name="p", nodes=(*nodes, Node("plain", NodeKind.START)))


def test_timer_starts_of_a_graph() -> None:
    published = at(2026, 5, 1, 10)
    found = timer_starts(
        _graph(
            TimerSpec(date="2026-06-01T09:00:00+02:00"),
            TimerSpec(duration="PT15M"),
            TimerSpec(cycle="0 8 * * *"),
            TimerSpec(cycle="R2/PT1H"),
        ),
        published,
    )
    by_node = {t.node_id: t for t in found}
    assert set(by_node) == {"s0", "s1", "s2", "s3"}
    assert by_node["s0"].cadence.once and by_node["s0"].first_run_at == at(2026, 6, 1, 7)
    assert by_node["s1"].cadence.once
    assert by_node["s1"].first_run_at == published + timedelta(minutes=15)
    assert by_node["s2"].cadence == Cadence(cron="0 8 * * *")
    assert by_node["s2"].first_run_at == at(2026, 5, 2, 8)
    assert by_node["s3"].first_run_at == at(2026, 5, 1, 11)

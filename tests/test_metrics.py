"""processgpt.metrics without a database: what a worker's counts do to the exposition, the
cap on agent label values, and the deployment gauges' rendering."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from processgpt import metrics
from processgpt.metrics import QueueSnapshot, TaskCounters

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(collector: Collector | None = None) -> Samples:
    """The samples of the process's exposition, or of ``collector`` alone."""
    if collector is None:
        text = metrics.exposition().decode()
    else:
        registry = CollectorRegistry()
        registry.register(collector)
        text = generate_latest(registry).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def get(name: str, collector: Collector | None = None, **labels: str) -> float:
    return samples(collector).get((name, tuple(sorted(labels.items()))), 0.0)


def test_an_exposition_is_cheap_to_make() -> None:
    started = time.perf_counter()
    text = metrics.exposition()
    assert time.perf_counter() - started < 0.5, len(text)


def test_an_attempt_moves_its_counter_and_both_histograms_once() -> None:
    counters = TaskCounters()
    agent = "demo"
    counters.claimed(agent, 2)
    counters.attempt_ended(agent, "done", wait_seconds=0.02, run_seconds=1.5)
    counters.attempt_ended(
        agent, "failed", wait_seconds=3.0, run_seconds=7200.0, dead_lettered=True
    )
    counters.attempt_ended(agent, "cancelled", wait_seconds=0.1, run_seconds=0.2, counted=False)
    assert get("processgpt_tasks_claimed_total", counters, agent=agent) == 2
    assert get("processgpt_tasks_completed_total", counters, agent=agent) == 1
    assert get("processgpt_tasks_failed_total", counters, agent=agent) == 1
    assert get("processgpt_tasks_dead_lettered_total", counters, agent=agent) == 1
    assert (
        get("processgpt_tasks_cancelled_total", counters, agent=agent) == 0
    )  # counted by its writer
    assert get("processgpt_task_run_seconds_count", counters, agent=agent, outcome="cancelled") == 1
    run = "processgpt_task_run_seconds_bucket"
    assert get(run, counters, agent=agent, outcome="failed", le="3600.0") == 0
    assert (
        get(run, counters, agent=agent, outcome="failed", le="7200.0") == 1
    )  # buckets reach hours
    assert get(run, counters, agent=agent, outcome="completed", le="2.5") == 1
    assert (
        get("processgpt_task_wait_seconds_sum", counters, agent=agent, outcome="completed") == 0.02
    )


def test_a_recovered_lease_counts_as_a_retry_or_a_dead_letter() -> None:
    counters = TaskCounters()
    counters.recovered("demo", failed=False)
    counters.recovered("demo", failed=True)
    assert get("processgpt_tasks_retried_total", counters, agent="demo") == 1
    assert get("processgpt_tasks_failed_total", counters, agent="demo") == 1
    assert get("processgpt_tasks_dead_lettered_total", counters, agent="demo") == 1


def test_agent_label_values_are_capped() -> None:
    counters = TaskCounters()
    for i in range(metrics.MAX_AGENT_LABELS + 5):
        counters.cancelled(f"unit-cap-{i}")
    assert get("processgpt_tasks_cancelled_total", counters, agent="unit-cap-0") == 1
    assert (
        get(
            "processgpt_tasks_cancelled_total",
            counters,
            agent=f"unit-cap-{metrics.MAX_AGENT_LABELS}",
        )
        == 0
    )
    assert get("processgpt_tasks_cancelled_total", counters, agent=metrics.OTHER_AGENTS) >= 5


def test_the_deployment_gauges_show_the_snapshot() -> None:
    metrics.set_queue_snapshot(
        QueueSnapshot(
            taken_at=time.time() - 2,
            pending={"demo": 4},
            pending_due={"demo": 3},
            in_progress={"demo": 1},
            input_required={"demo": 0},
            oldest_pending_seconds={"demo": 12.5},
            instances={"RUNNING": 2, "INCIDENT": 1},
            incidents_open=1,
        )
    )
    try:
        assert get("processgpt_tasks_pending", agent="demo") == 4
        assert get("processgpt_tasks_pending_due", agent="demo") == 3
        assert get("processgpt_oldest_pending_task_age_seconds", agent="demo") == 12.5
        assert get("processgpt_process_instances", status="INCIDENT") == 1
        assert get("processgpt_process_incidents_open") == 1
        assert 2 <= get("processgpt_metrics_snapshot_age_seconds") < 10
    finally:
        metrics.set_queue_snapshot(None)
    assert ("processgpt_tasks_pending", (("agent", "demo"),)) not in samples()


def test_slots_come_from_the_live_workers() -> None:
    class Source:
        slots = 8
        running = 3

    before = get("processgpt_worker_slots")
    untrack = metrics.track_slots(Source())
    assert get("processgpt_worker_slots") == before + 8
    untrack()
    assert get("processgpt_worker_slots") == before

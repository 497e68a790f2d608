"""Prometheus metrics of a processgpt process: the one registry, the metric objects, and what
``/metrics`` serves.

Any layer may import this module (it imports nothing of processgpt's); it holds no I/O but
the standard-library HTTP listener of :func:`serve_metrics`. Three kinds of metric live here:

* **Counters and histograms of this process** (``processgpt_tasks_*_total``,
  ``processgpt_task_wait_seconds``, ``processgpt_task_run_seconds``, claim and event-write
  timings), counted where the thing happened: a worker counts the attempts it ran once their
  last write is durable; the API counts the cancellations it wrote. Sum them over processes
  (``sum by (agent) (rate(...))``).
* **Gauges of this process's workers** (``processgpt_worker_slots``,
  ``processgpt_worker_slots_in_use``), read from the live :class:`SlotSource`\\ s at scrape
  time.
* **Gauges of the whole deployment** (``processgpt_tasks_pending``, ``…_in_progress``, the
  age of the oldest pending task, process instances, incidents): computed from the database
  once per interval by one process, kept in a snapshot table, and copied into every process
  by :class:`~processgpt.runtime.metrics_snapshot.SnapshotLoop` (see
  :func:`set_queue_snapshot`). Every process shows the same values: aggregate them with
  ``max``, never ``sum``.

Labels are low-cardinality by contract: ``agent`` (an orchestrator name), ``outcome``,
``status``. Never a task, instance, user or tenant id.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

__all__ = [
    "CONTENT_TYPE",
    "REGISTRY",
    "QueueSnapshot",
    "SlotSource",
    "TaskCounters",
    "exposition",
    "serve_metrics",
    "set_queue_snapshot",
    "track_slots",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The content type of :func:`exposition` (Prometheus text format 0.0.4)."""

REGISTRY = CollectorRegistry(auto_describe=True)
"""The registry every processgpt metric is in (not prometheus_client's global one, so a
library's own metrics never show up by accident)."""

ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

TIME_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
)  # fmt: skip
"""Buckets of task wait and run times: 5 ms up to 8 hours."""

FAST_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Buckets of database round trips (claims, event writes): 0.5 ms up to 10 s."""

SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Buckets of batch sizes (tasks per claim, events per write)."""


CLAIM_DURATION = Histogram(
    "processgpt_claim_duration_seconds",
    "Round trip of one claim statement (whether or not it found tasks)",
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
CLAIM_SIZE = Histogram(
    "processgpt_claim_tasks",
    "Tasks one claim statement returned (claims that found none included)",
    buckets=(0, *SIZE_BUCKETS),
    registry=REGISTRY,
)
EVENT_WRITE_DURATION = Histogram(
    "processgpt_event_write_duration_seconds",
    "Time to commit one batch of the worker's writer (events, results, states), retries of "
    "a lost connection included",
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
EVENT_WRITE_BATCH_EVENTS = Histogram(
    "processgpt_event_write_batch_events",
    "Events in one committed batch of the worker's writer",
    buckets=(0, *SIZE_BUCKETS),
    registry=REGISTRY,
)
EVENT_WRITE_BATCH_TASKS = Histogram(
    "processgpt_event_write_batch_tasks",
    "Tasks whose writes one committed batch of the worker's writer carried",
    buckets=SIZE_BUCKETS,
    registry=REGISTRY,
)

WEBHOOK_ATTEMPTS = Counter(
    "processgpt_webhook_attempts",
    "Webhook delivery attempts this process's workers made, by how they ended: delivered, "
    "retry (to be sent again), dead (the retry schedule used up), gone (410: the endpoint "
    "was disabled), stale (a later claim of the delivery had taken over)",
    ("outcome",),
    registry=REGISTRY,
)
WEBHOOK_ATTEMPT_DURATION = Histogram(
    "processgpt_webhook_attempt_seconds",
    "Time of one webhook delivery attempt (connect, send, answer)",
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

# -- attempts: how an attempt ended, counted once per attempt ---------------------------------

OUTCOMES = (
    "completed",
    "failed",
    "retried",
    "cancelled",
    "input_required",
    "handed_back",
    "lease_lost",
)
"""The ``outcome`` label of the wait and run histograms."""

OUTCOME_OF_STAT: Mapping[str, str] = {
    "done": "completed",
    "failed": "failed",
    "retried": "retried",
    "cancelled": "cancelled",
    "input_required": "input_required",
    "handed_back": "handed_back",
    "lease_lost": "lease_lost",
}
"""The ``outcome`` of each way a worker's attempt ends (the worker's ``stats`` keys)."""

_TASK_COUNTERS: Mapping[str, str] = {
    "claimed": "Attempts claimed by this process's workers",
    "completed": "Tasks that ended DONE",
    "failed": "Tasks that ended FAILED for any reason (dead letters included)",
    "retried": "Failed attempts put back in the queue for another attempt (with backoff, or "
    "after their worker's lease expired)",
    "dead_lettered": "Tasks that ended FAILED because they ran out of attempts",
    "cancelled": "Tasks cancelled (by a person through the API, or by their agent)",
    "handed_back": "Running tasks a stopping worker handed back (the attempt not counted)",
}
"""``processgpt_tasks_<key>_total{agent}``: its help text."""

_HISTOGRAMS: Mapping[str, str] = {
    "processgpt_task_wait_seconds": "How long an attempt waited in the queue: from when it "
    "was due (created, or the end of its retry backoff) to its claim; observed when the "
    "attempt ended",
    "processgpt_task_run_seconds": "How long an attempt ran: from its claim to its last "
    "write being durable",
}

MAX_AGENT_LABELS = 200
"""Distinct ``agent`` label values one process counts; later names count as
:data:`OTHER_AGENTS`."""

OTHER_AGENTS = "_other"


_INF_BUCKET = len(TIME_BUCKETS)


class _Series:
    """One agent's attempts with one outcome: how many moved the outcome's counter, how
    many were dead letters, and their wait and run histograms (per bucket, not cumulative;
    the last bucket is +Inf)."""

    __slots__ = ("agent", "counted", "dead", "outcome", "run", "run_sum", "wait", "wait_sum")

    def __init__(self, agent: str, outcome: str) -> None:
        self.agent = agent
        self.outcome = outcome
        self.counted = 0
        self.dead = 0
        self.wait = [0] * (_INF_BUCKET + 1)
        self.run = [0] * (_INF_BUCKET + 1)
        self.wait_sum = 0.0
        self.run_sum = 0.0


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    total = 0
    out: list[tuple[str, float]] = []
    for bound, count in zip((*TIME_BUCKETS, math.inf), counts, strict=True):
        total += count
        out.append(("+Inf" if math.isinf(bound) else repr(float(bound)), total))
    return out


class TaskCounters(Collector):
    """What the processes count about tasks (``processgpt_tasks_*_total{agent}`` and the wait
    and run histograms by agent and outcome), kept as plain numbers under one lock and
    rendered at scrape time. An attempt's end is a dictionary lookup, two bisections and a
    few additions (the client library's objects cost about twice as much: a lock and a
    method call per counter and per bucket test). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], _Series] = {}  # (agent, worker stat) → series
        self._counts: dict[tuple[str, str], int] = {}  # (counter key, agent): other counts
        self._agents: set[str] = set()

    def _agent(self, agent: str) -> str:  # holding the lock
        if agent in self._agents:
            return agent
        if len(self._agents) >= MAX_AGENT_LABELS:
            return OTHER_AGENTS
        self._agents.add(agent)
        return agent

    def _inc(self, key: str, agent: str, amount: int = 1) -> None:
        with self._lock:
            slot = (key, self._agent(agent))
            self._counts[slot] = self._counts.get(slot, 0) + amount

    def _new_series(self, agent: str, stat: str) -> _Series:
        with self._lock:
            label = self._agent(agent)
            outcome = OUTCOME_OF_STAT[stat]
            for series in self._series.values():  # past the cap, several names share one
                if series.agent == label and series.outcome == outcome:
                    break
            else:
                series = _Series(label, outcome)
            self._series[agent, stat] = series
            return series

    def claimed(self, agent: str, count: int = 1) -> None:
        self._inc("claimed", agent, count)

    def attempt_ended(
        self,
        agent: str,
        stat: str,
        *,
        wait_seconds: float,
        run_seconds: float,
        dead_lettered: bool = False,
        counted: bool = True,
    ) -> None:
        """An attempt ended as the worker's ``stat`` says (see :data:`OUTCOME_OF_STAT`);
        ``dead_lettered``: it failed its task because the task ran out of attempts.
        ``counted`` False: the task's counter was moved by whoever wrote its end (a person's
        cancellation, by the API); the histograms still observe the attempt."""
        series = self._series.get((agent, stat))
        if series is None:
            series = self._new_series(agent, stat)
        wait_seconds = max(wait_seconds, 0.0)
        run_seconds = max(run_seconds, 0.0)
        with self._lock:
            if counted:
                series.counted += 1
            if dead_lettered:
                series.dead += 1
            series.wait[bisect.bisect_left(TIME_BUCKETS, wait_seconds)] += 1
            series.wait_sum += wait_seconds
            series.run[bisect.bisect_left(TIME_BUCKETS, run_seconds)] += 1
            series.run_sum += run_seconds

    def recovered(self, agent: str, *, failed: bool) -> None:
        """A task whose worker's lease expired was put back (``failed`` False) or failed for
        good, out of attempts (True)."""
        if failed:
            self._inc("failed", agent)
            self._inc("dead_lettered", agent)
        else:
            self._inc("retried", agent)

    def cancelled(self, agent: str) -> None:
        """A task was cancelled by a person (counted by the process that wrote it)."""
        self._inc("cancelled", agent)

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        with self._lock:
            counts = dict(self._counts)
            series = list({id(s): s for s in self._series.values()}.values())
            for s in series:
                if s.outcome in _TASK_COUNTERS and s.counted:
                    slot = (s.outcome, s.agent)
                    counts[slot] = counts.get(slot, 0) + s.counted
                if s.dead:
                    slot = ("dead_lettered", s.agent)
                    counts[slot] = counts.get(slot, 0) + s.dead
            rendered = sorted(
                (
                    (s.agent, s.outcome),
                    (_cumulative(s.wait), s.wait_sum),
                    (_cumulative(s.run), s.run_sum),
                )
                for s in series
            )
        for key, doc in _TASK_COUNTERS.items():
            family = CounterMetricFamily(f"processgpt_tasks_{key}", doc, labels=("agent",))
            for (counted, agent), value in sorted(counts.items()):
                if counted == key:
                    family.add_metric((agent,), value)
            yield family
        for index, name in enumerate(
            ("processgpt_task_wait_seconds", "processgpt_task_run_seconds")
        ):
            hist = HistogramMetricFamily(name, _HISTOGRAMS[name], labels=("agent", "outcome"))
            for labels, *histograms in rendered:
                buckets, total = histograms[index]
                hist.add_metric(labels, buckets, total)
            yield hist


TASKS = TaskCounters()
"""The process's task counters (every worker of the process and its API count here)."""
REGISTRY.register(TASKS)

# -- worker slots: read from the live workers at scrape time ----------------------------------


class SlotSource(Protocol):
    """A worker as the slot gauges see it."""

    @property
    def slots(self) -> int: ...

    @property
    def running(self) -> int: ...


class _SlotCollector(Collector):
    def __init__(self) -> None:
        self._sources: dict[int, SlotSource] = {}
        self._lock = threading.Lock()

    def add(self, source: SlotSource) -> Callable[[], None]:
        with self._lock:
            self._sources[id(source)] = source

        def remove() -> None:
            with self._lock:
                self._sources.pop(id(source), None)

        return remove

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            sources = list(self._sources.values())
        yield GaugeMetricFamily(
            "processgpt_worker_slots",
            "Tasks this process's workers may run at once (their concurrency)",
            value=sum(s.slots for s in sources),
        )
        yield GaugeMetricFamily(
            "processgpt_worker_slots_in_use",
            "Tasks this process's workers are running now",
            value=sum(s.running for s in sources),
        )


_SLOTS = _SlotCollector()
REGISTRY.register(_SLOTS)


def track_slots(source: SlotSource) -> Callable[[], None]:
    """Count ``source``'s slots in the slot gauges until the returned function is called."""
    return _SLOTS.add(source)


# -- deployment gauges: a copy of the database's snapshot -------------------------------------


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The deployment's queue as the database saw it at ``taken_at`` (Unix time)."""

    taken_at: float
    pending: Mapping[str, int]
    """PENDING tasks by agent (waiting for a retry's backoff included)."""
    pending_due: Mapping[str, int]
    """PENDING tasks by agent that a worker may claim now."""
    in_progress: Mapping[str, int]
    input_required: Mapping[str, int]
    oldest_pending_seconds: Mapping[str, float]
    """By agent: how long the oldest due PENDING task has been due."""
    instances: Mapping[str, int]
    """Open process instances by status (RUNNING, INCIDENT)."""
    incidents_open: int
    extra: Mapping[str, Mapping[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    """Further gauges computed with the snapshot: metric name → labels → value."""


_EXTRA_DOCS: dict[str, str] = {}


def describe_extra_gauge(name: str, documentation: str) -> None:
    """Give a gauge of :attr:`QueueSnapshot.extra` its help text."""
    _EXTRA_DOCS[name] = documentation


class _SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.snapshot: QueueSnapshot | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snapshot
        if snap is None:
            return
        yield GaugeMetricFamily(
            "processgpt_metrics_snapshot_age_seconds",
            "Age of the database snapshot the deployment gauges come from",
            value=max(0.0, time.time() - snap.taken_at),
        )
        yield _by_label(
            "processgpt_tasks_pending", "PENDING tasks (backoff included)", "agent", snap.pending
        )
        yield _by_label(
            "processgpt_tasks_pending_due",
            "PENDING tasks a worker may claim now",
            "agent",
            snap.pending_due,
        )
        yield _by_label(
            "processgpt_tasks_in_progress", "IN_PROGRESS tasks", "agent", snap.in_progress
        )
        yield _by_label(
            "processgpt_tasks_input_required",
            "Tasks waiting for a person's answer",
            "agent",
            snap.input_required,
        )
        yield _by_label(
            "processgpt_oldest_pending_task_age_seconds",
            "How long the oldest claimable PENDING task has been due",
            "agent",
            snap.oldest_pending_seconds,
        )
        yield _by_label(
            "processgpt_process_instances",
            "Open process instances by status",
            "status",
            snap.instances,
        )
        yield GaugeMetricFamily(
            "processgpt_process_incidents_open",
            "Open incidents of process instances",
            value=snap.incidents_open,
        )
        for name, series in sorted(snap.extra.items()):
            yield _labelled(name, _EXTRA_DOCS.get(name, name), series)


def _by_label(name: str, doc: str, label: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=(label,))
    for key, value in sorted(values.items()):
        family.add_metric((key,), value)
    return family


def _labelled(
    name: str, doc: str, series: Mapping[tuple[tuple[str, str], ...], float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    for labels, value in sorted(series.items()):
        family.samples.append(Sample(name, dict(labels), value))
    return family


_SNAPSHOT = _SnapshotCollector()
REGISTRY.register(_SNAPSHOT)


def set_queue_snapshot(snapshot: QueueSnapshot | None) -> None:
    """Show ``snapshot`` in this process's deployment gauges (None: show none)."""
    _SNAPSHOT.snapshot = snapshot


def queue_snapshot() -> QueueSnapshot | None:
    """The snapshot this process's deployment gauges show."""
    return _SNAPSHOT.snapshot


# -- exposition -------------------------------------------------------------------------------


def exposition() -> bytes:
    """The process's metrics in the Prometheus text format (:data:`CONTENT_TYPE`)."""
    return generate_latest(REGISTRY)


def serve_metrics(host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread (a worker's listener; the API
    serves it as a route instead). Shut it down with ``server.shutdown()``."""
    return start_http_server(port, addr=host, registry=REGISTRY)


def family_names(registry: CollectorRegistry = REGISTRY) -> Iterable[str]:
    """The names of the metric families ``registry`` exposes now (for tests and docs)."""
    return sorted({m.name for m in registry.collect()})

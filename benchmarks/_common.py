"""Shared helpers for the benchmarks: the database, the no-op executor, statistics and output.

Every benchmark runs against a fresh database: on its own embedded Postgres (default durable
settings, unix socket only) or, with ``--database-url``, in a new database created on that
server and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
from a2a.helpers import new_text_artifact, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

from processgpt.db.database import Database
from processgpt.db.embedded import EmbeddedPostgres
from processgpt.db.migrate import migrate

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# -- command line and running ----------------------------------------------------------------


def parser(description: str | None, *, timeout: float) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark has."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--database-url",
        help="use this Postgres server (a fresh database is created and dropped) instead of "
        "starting an embedded one",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        help=f"give up after this many seconds (default {timeout:g})",
    )
    return p


def run(main: Coroutine[Any, Any, None], timeout: float) -> None:
    """Run ``main`` on a fresh event loop, bounded by ``timeout`` seconds (exit status 2)."""
    try:
        asyncio.run(asyncio.wait_for(main, timeout))
    except TimeoutError:
        print(f"benchmark timed out after {timeout:g}s", file=sys.stderr)
        sys.exit(2)


# -- the database ------------------------------------------------------------------------------


def _with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@asynccontextmanager
async def postgres_server(database_url: str | None) -> AsyncIterator[str]:
    """The DSN of a server: ``database_url``, or an embedded Postgres in a temp directory."""
    if database_url:
        yield database_url
        return
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    with tempfile.TemporaryDirectory(prefix="pgpt-bench-") as tmp:
        pg = await asyncio.to_thread(EmbeddedPostgres, Path(tmp))
        try:
            yield pg.dsn
        finally:
            await asyncio.to_thread(pg.stop)


@asynccontextmanager
async def fresh_database(server_dsn: str, prefix: str = "pgpt_bench") -> AsyncIterator[str]:
    """A new, empty database on the server for the duration of the block."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    try:
        yield _with_database(server_dsn, name)
    finally:
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


async def open_processgpt(
    dsn: str, max_size: int = 10, server_settings: dict[str, str] | None = None
) -> Database:
    """A connection pool to ``dsn`` with the ProcessGPT schema migrated."""
    db = await Database.connect(dsn, max_size=max_size, server_settings=server_settings)
    await migrate(db)
    return db


async def insert_tasks(db: Database, count: int, agent_orch: str, input_json: str = "{}") -> None:
    """Bulk-insert ``count`` PENDING tasks in one statement (the trigger NOTIFYs workers)."""
    await db.execute(
        "INSERT INTO todolist (tenant_id, agent_orch, query, input) "
        "SELECT 'default', $2, 'x', $3::text::jsonb FROM generate_series(1, $1)",
        count,
        agent_orch,
        input_json,
    )


async def has_open_tasks(db: Database) -> bool:
    """Whether any task is still PENDING or IN_PROGRESS. Each probe reads the first entry of a
    partial index (claim, lease), so polling it costs the server next to nothing; counting the
    DONE rows instead would scan the whole table every poll, in the measured time."""
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM todolist WHERE status = 'PENDING')"
            " OR EXISTS (SELECT 1 FROM todolist WHERE status = 'IN_PROGRESS')"
        )
    )


async def count_status(db: Database, status: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM todolist WHERE status = $1", status))


async def wait_until(
    check: Callable[[], Coroutine[Any, Any, bool]],
    *,
    alive: asyncio.Task[Any] | None = None,
    interval: float = 0.05,
) -> float:
    """Poll ``check`` every ``interval`` seconds until true; return ``perf_counter()`` then.
    Fails at once if ``alive`` (the task doing the work) ends first."""
    while not await check():
        if alive is not None and alive.done():
            alive.result()  # raises whatever stopped it
            raise RuntimeError("the worker stopped before the work was done")
        await asyncio.sleep(interval)
    return time.perf_counter()


class CpuMeter:
    """CPU seconds spent by this process and by the Postgres server between :meth:`start`
    and :meth:`stop`: where a throughput number's time goes.

    The server's share is the postmaster's own time, plus its reaped children's (backends
    that exited), plus the live children's, so connections opened and closed during the run
    are counted too. Only meaningful when nothing else uses the server meanwhile.
    """

    def __init__(self, postmaster_pid: int) -> None:
        self._self = psutil.Process()
        self._postmaster = psutil.Process(postmaster_pid)
        self._start: tuple[float, float] = (0.0, 0.0)
        self.python_s = 0.0
        self.postgres_s = 0.0

    @classmethod
    async def for_server(cls, dsn: str) -> CpuMeter:
        conn = await asyncpg.connect(dsn)
        try:
            backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
            parent = psutil.Process(backend).parent()  # while the backend lives
        finally:
            await conn.close()
        assert parent is not None
        return cls(parent.pid)

    def _sample(self) -> tuple[float, float]:
        own = self._self.cpu_times()
        pm = self._postmaster.cpu_times()
        server = pm.user + pm.system + pm.children_user + pm.children_system
        for child in self._postmaster.children():
            try:
                times = child.cpu_times()
            except psutil.NoSuchProcess:  # exited between the listing and the read
                continue
            server += times.user + times.system
        return own.user + own.system, server

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        own, server = self._sample()
        self.python_s = own - self._start[0]
        self.postgres_s = server - self._start[1]
        return {"python_cpu_s": self.python_s, "postgres_cpu_s": self.postgres_s}

    def per_task(self, n: int) -> dict[str, float]:
        """The last :meth:`stop`'s CPU seconds, and per task in microseconds."""
        return {
            "python_cpu_s": self.python_s,
            "postgres_cpu_s": self.postgres_s,
            "python_cpu_us_per_task": self.python_s / n * 1e6,
            "postgres_cpu_us_per_task": self.postgres_s / n * 1e6,
        }


async def server_info(dsn: str) -> dict[str, Any]:
    """What the numbers depend on: the server's version and durability settings, the host."""
    conn = await asyncpg.connect(dsn)
    try:
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers")
        }
    finally:
        await conn.close()
    return {
        "postgres": settings,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


# -- the no-op ProcessGPT task -----------------------------------------------------------------


# Protobuf enum attributes are looked up by Python code on every access (~2.5 µs): once here.
_WORKING = TaskState.TASK_STATE_WORKING
_AGENT = Role.ROLE_AGENT


def status_event(context: RequestContext, text: str, number: int = 1) -> TaskStatusUpdateEvent:
    """A working-state update carrying ``text``, built directly: its message id is the task
    id and ``number`` (unique per task), not a uuid4 as a2a's helpers draw for every message.

    Built in place (fields set on the new message): with the upb protobuf runtime, passing
    sub-messages to a constructor copies each of them, which makes the same event cost ~5×
    as much (``constructed_status_event``)."""
    task_id = str(context.task_id)
    event = TaskStatusUpdateEvent(task_id=task_id, context_id=str(context.context_id))
    status = event.status
    status.state = _WORKING
    message = status.message
    message.message_id = f"{task_id}:{number}"
    message.role = _AGENT
    message.parts.add(text=text)
    return event


def artifact_event(context: RequestContext, text: str) -> TaskArtifactUpdateEvent:
    """The final result ``text`` as the task's one artifact, built directly (in place, as
    :func:`status_event`)."""
    task_id = str(context.task_id)
    event = TaskArtifactUpdateEvent(
        task_id=task_id, context_id=str(context.context_id), last_chunk=True
    )
    artifact = event.artifact
    artifact.artifact_id = f"{task_id}:result"
    artifact.name = "result"
    artifact.parts.add(text=text)
    return event


def constructed_status_event(
    context: RequestContext, text: str, number: int = 1
) -> TaskStatusUpdateEvent:
    """:func:`status_event` built with nested constructors (the same event)."""
    task_id = str(context.task_id)
    message = Message(message_id=f"{task_id}:{number}", role=_AGENT, parts=[Part(text=text)])
    return TaskStatusUpdateEvent(
        task_id=task_id,
        context_id=str(context.context_id),
        status=TaskStatus(state=_WORKING, message=message),
    )


def constructed_artifact_event(context: RequestContext, text: str) -> TaskArtifactUpdateEvent:
    """:func:`artifact_event` built with nested constructors (the same event)."""
    task_id = str(context.task_id)
    return TaskArtifactUpdateEvent(
        task_id=task_id,
        context_id=str(context.context_id),
        artifact=Artifact(artifact_id=f"{task_id}:result", name="result", parts=[Part(text=text)]),
        last_chunk=True,
    )


def helper_status_event(
    context: RequestContext, text: str, number: int = 1
) -> TaskStatusUpdateEvent:
    """:func:`status_event` as a2a's helpers build it (a uuid4 message id; ``number`` is not
    used)."""
    return TaskStatusUpdateEvent(
        task_id=str(context.task_id),
        context_id=str(context.context_id),
        status=TaskStatus(state=TaskState.TASK_STATE_WORKING, message=new_text_message(text)),
    )


def helper_artifact_event(context: RequestContext, text: str) -> TaskArtifactUpdateEvent:
    """:func:`artifact_event` as a2a's helpers build it (a uuid4 artifact id)."""
    return TaskArtifactUpdateEvent(
        task_id=str(context.task_id),
        context_id=str(context.context_id),
        artifact=new_text_artifact(name="result", text=text),
        last_chunk=True,
    )


EVENT_STYLES = ("direct", "constructors", "helpers")
"""How :class:`NoopExecutor` builds its events: in place (``direct``), with nested protobuf
constructors, or with a2a's helper functions (a uuid4 per message and artifact)."""


class NoopExecutor(AgentExecutor):
    """Two status events, an optional ``delay`` (an LLM call), then the final artifact.

    ``on_start(task_id)`` is called on the first line of ``execute``. ``events`` says how the
    events are built (:data:`EVENT_STYLES`); ``helpers=True`` is ``events="helpers"``.
    """

    def __init__(
        self,
        delay: float = 0.0,
        on_start: Callable[[str], None] | None = None,
        *,
        helpers: bool = False,
        events: str = "direct",
    ) -> None:
        self.delay = delay
        self.on_start = on_start
        style = "helpers" if helpers else events
        builders = {
            "direct": (status_event, artifact_event),
            "constructors": (constructed_status_event, constructed_artifact_event),
            "helpers": (helper_status_event, helper_artifact_event),
        }
        if style not in builders:
            raise ValueError(f"unknown event style {style!r}")
        self._status, self._artifact = builders[style]

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        if self.on_start is not None:
            self.on_start(str(context.task_id))
        await event_queue.enqueue_event(self._status(context, "a", 1))
        await event_queue.enqueue_event(self._status(context, "b", 2))
        if self.delay:
            await asyncio.sleep(self.delay)
        await event_queue.enqueue_event(self._artifact(context, '{"ok":true}'))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


# -- statistics and output ---------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of already sorted values, linearly interpolated."""
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean of ``values``."""
    ordered = sorted(values)
    return {
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else float("nan"),
        "mean": sum(ordered) / len(ordered) if ordered else float("nan"),
    }


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table; floats are shown with two decimals."""

    def cell(value: object) -> str:
        return f"{value:,.2f}" if isinstance(value, float) else str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print(line)
    for row in text:
        print(
            "  ".join(
                v.rjust(w) if i else v.ljust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()


def verdict(measured: float, target: float, *, higher_is_better: bool) -> str:
    ok = measured >= target if higher_is_better else measured <= target
    return "meets target" if ok else "MISSES target"


def write_results(name: str, results: dict[str, Any]) -> Path:
    """Write ``results`` (plus a timestamp) to ``benchmarks/results/<name>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "finished_at": datetime.now(UTC).isoformat(), **results}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results written to {path}")
    return path

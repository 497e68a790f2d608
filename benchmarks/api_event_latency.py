"""Event latency through the API: from an executor's ``enqueue_event`` to an SSE client.

A real ``processgpt api`` process (subprocess, 127.0.0.1, free port) serves the streams; an
in-process worker runs ``--tasks`` ticker tasks that each emit ``--events`` progress events
``--interval`` seconds apart; one SSE stream per task (``ProcessGPTClient.stream``) is opened
before the tasks start. Each event carries ``time.time()`` taken just before
``enqueue_event``; the client subtracts it from ``time.time()`` when the part arrives (same
host, same clock). Target (issue): p50 <= 15 ms, p99 <= 60 ms with 100 concurrent streams.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import (
    artifact_event,
    fresh_database,
    open_processgpt,
    parser,
    postgres_server,
    print_table,
    run,
    server_info,
    summarize,
    verdict,
    write_results,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue

from processgpt.agents.task_runner import A2ATaskRunner
from processgpt.client import DataPart, ProcessGPTClient, ReconnectPolicy
from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.runtime.worker import Worker, WorkerOptions

NAME = "api_event_latency"
TARGET_P50_MS = 15.0
TARGET_P99_MS = 60.0


class TickerExecutor(AgentExecutor):
    """Waits ``start_after`` seconds, then emits ``events`` progress events ``interval``
    seconds apart, each with ``{"t": time.time()}`` taken just before ``enqueue_event``."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        options: dict[str, Any] = context.get_context_data()["row"]["input"]  # type: ignore[attr-defined]
        queue: Any = event_queue
        await asyncio.sleep(float(options.get("start_after", 0)))
        interval = float(options.get("interval", 0.05))
        for i in range(int(options.get("events", 20))):
            await queue.progress({"t": time.time(), "i": i})
            await asyncio.sleep(interval)
        await queue.progress({"t": time.time(), "i": -1}, name="ticker_done")
        await event_queue.enqueue_event(artifact_event(context, '{"ok":true}'))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class ApiProcess:
    """``python -m processgpt.cli api`` on 127.0.0.1 with a free port; its log in a file."""

    def __init__(self, dsn: str, env: dict[str, str] | None = None) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix="pgpt-bench-api-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "processgpt.cli", "api"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "DATABASE_URL": dsn,
                "PROCESSGPT_API_HOST": "127.0.0.1",
                "PROCESSGPT_API_PORT": "0",
                "PROCESSGPT_LOG_LEVEL": "INFO",
                **(env or {}),
            },
        )
        self.url = ""

    async def started(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_path.read_text(errors="replace")
            match = re.search(r"api listening url=(\S+)", text)
            if match:
                self.url = match[1]
                return self.url
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API process did not start:\n{text}")
            await asyncio.sleep(0.05)

    def rss_mb(self) -> float:
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.log_path.unlink(missing_ok=True)


@asynccontextmanager
async def api_and_worker(
    dsn: str, *, concurrency: int, api_env: dict[str, str] | None = None
) -> AsyncIterator[tuple[Database, ApiProcess, str]]:
    """The benchmark database, a running API process, an API key, and an in-process worker
    for the ``ticker`` agent."""
    db = await open_processgpt(dsn, max_size=10)
    key = (await ApiKeyRepository(db).create("bench")).key
    options = WorkerOptions(concurrency=concurrency, shutdown_grace=5.0)
    worker = Worker(db, {"ticker": A2ATaskRunner(TickerExecutor())}, options)
    runner = asyncio.create_task(worker.run())
    api = ApiProcess(dsn, api_env)
    try:
        await asyncio.wait_for(worker.started.wait(), 30)
        await api.started()
        yield db, api, key
    finally:
        api.stop()
        worker.stop()
        await runner
        await db.close()


def client_for(url: str, key: str) -> ProcessGPTClient:
    """A client whose connection pool has no limit (one connection per open stream)."""
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=200)
    )
    return ProcessGPTClient(
        url, key, timeout=60, transport=transport, reconnect=ReconnectPolicy(max_retries=3)
    )


async def follow(
    client: ProcessGPTClient, task_id: str, latencies: list[float], opened: asyncio.Event | None
) -> int:
    """Read one task's stream to its end; append each progress part's latency (ms)."""
    received = 0
    stream = client.stream(task_id)
    async for part in stream:
        if opened is not None and part.type == "start":
            opened.set()
        if isinstance(part, DataPart) and part.name == "progress":
            latencies.append((time.time() - float(part.data["t"])) * 1000)
            received += 1
    return received


async def create_tasks(client: ProcessGPTClient, count: int, options: dict[str, Any]) -> list[str]:
    sem = asyncio.Semaphore(20)

    async def one(i: int) -> str:
        async with sem:
            task = await client.create_task("ticker", f"t{i}", input=options)
            return str(task.id)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def main(args: argparse.Namespace) -> None:
    async with (
        postgres_server(args.database_url) as server,
        fresh_database(server) as dsn,
        api_and_worker(dsn, concurrency=max(args.tasks, 10)) as (_db, api, key),
    ):
        async with client_for(api.url, key) as client:
            options = {"events": args.events, "interval": args.interval, "start_after": 2.0}
            ids = await create_tasks(client, args.tasks, options)
            latencies: list[float] = []
            opened = [asyncio.Event() for _ in ids]
            started = time.perf_counter()
            readers = [
                asyncio.create_task(follow(client, tid, latencies, ev))
                for tid, ev in zip(ids, opened, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 30)
            open_time = time.perf_counter() - started
            counts = await asyncio.gather(*readers)
        rss = api.rss_mb() if api.proc.poll() is None else float("nan")
        info = await server_info(dsn)

    expected = args.tasks * args.events
    stats = summarize(latencies)
    print_table(
        f"event latency, enqueue_event -> SSE client, ms ({args.tasks} concurrent streams, "
        f"{args.events} events each, {args.interval * 1000:g} ms apart)",
        ["measure", "p50", "p90", "p99", "max", "mean"],
        [
            [
                "enqueue -> SSE part",
                stats["p50"],
                stats["p90"],
                stats["p99"],
                stats["max"],
                stats["mean"],
            ]
        ],
    )
    print(
        f"events received {sum(counts)} / {expected}; all {args.tasks} streams open in "
        f"{open_time:.2f}s; API RSS at the end {rss:.1f} MB"
    )
    for label, value, target in (
        ("p50", stats["p50"], TARGET_P50_MS),
        ("p99", stats["p99"], TARGET_P99_MS),
    ):
        print(
            f"target {label} <= {target:g} ms: {value:.2f} ms, "
            f"{verdict(value, target, higher_is_better=False)}"
        )
    write_results(
        NAME,
        {
            "params": {"tasks": args.tasks, "events": args.events, "interval": args.interval},
            "targets_ms": {"p50": TARGET_P50_MS, "p99": TARGET_P99_MS},
            "results": {
                "latency_ms": stats,
                "events_received": sum(counts),
                "events_expected": expected,
                "api_rss_mb": rss,
            },
            "meets_target": stats["p50"] <= TARGET_P50_MS and stats["p99"] <= TARGET_P99_MS,
            "environment": info,
        },
    )


if __name__ == "__main__":
    p = parser(__doc__, timeout=180)
    p.add_argument("--tasks", type=int, default=100, help="tasks = concurrent streams (100)")
    p.add_argument("--events", type=int, default=20, help="progress events per task (20)")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between events")
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

"""SSE fan-out: ``--subscribers`` concurrent SSE streams on ONE API process.

Two scenarios, each on a fresh set of ticker tasks (see ``api_event_latency.py``): all
subscribers on 1 task, and the subscribers spread over ``--tasks`` tasks. For each: the API
process's RSS idle, with every subscriber connected (before the events), at the peak, and
after the streams ended; delivery latency (``enqueue_event`` -> part at the subscriber)
p50/p99 over every delivered event; events delivered vs expected. Numbers are reported, not
asserted: the goal is that memory stays bounded and nothing is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _common import (
    fresh_database,
    parser,
    postgres_server,
    print_table,
    run,
    server_info,
    summarize,
    write_results,
)
from api_event_latency import ApiProcess, api_and_worker, client_for, create_tasks, follow

NAME = "api_sse_fanout"


async def scenario(
    api: ApiProcess, key: str, *, subscribers: int, tasks: int, events: int, interval: float
) -> dict[str, Any]:
    options = {"events": events, "interval": interval, "start_after": 0.0}
    async with client_for(api.url, key) as client:
        rss_idle = api.rss_mb()
        latencies: list[float] = []
        opened = [asyncio.Event() for _ in range(subscribers)]
        peak = rss_idle
        options["start_after"] = 1.0 + subscribers / 250  # the executors wait for everyone
        ids = await create_tasks(client, tasks, options)
        started = time.perf_counter()
        readers = [
            asyncio.create_task(follow(client, ids[i % tasks], latencies, opened[i]))
            for i in range(subscribers)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 60)
        connect_s = time.perf_counter() - started
        rss_connected = api.rss_mb()
        done = asyncio.gather(*readers)
        while not done.done():
            peak = max(peak, api.rss_mb())
            await asyncio.sleep(0.1)
        counts = done.result()
    await asyncio.sleep(1.0)
    rss_after = api.rss_mb()
    return {
        "subscribers": subscribers,
        "tasks": tasks,
        "events_per_task": events,
        "connect_seconds": connect_s,
        "events_delivered": sum(counts),
        "events_expected": subscribers * events,
        "latency_ms": summarize(latencies),
        "api_rss_mb": {
            "idle": rss_idle,
            "connected": rss_connected,
            "peak": peak,
            "after": rss_after,
        },
    }


async def main(args: argparse.Namespace) -> None:
    results = []
    async with (
        postgres_server(args.database_url) as server,
        fresh_database(server) as dsn,
        api_and_worker(dsn, concurrency=max(args.tasks, 10)) as (_db, api, key),
    ):
        await asyncio.sleep(1.0)  # let the API settle before the idle reading
        for tasks in (1, args.tasks):
            results.append(
                await scenario(
                    api,
                    key,
                    subscribers=args.subscribers,
                    tasks=tasks,
                    events=args.events,
                    interval=args.interval,
                )
            )
        info = await server_info(dsn)

    rows = [
        [
            f"{r['subscribers']} subs on {r['tasks']} task(s)",
            r["latency_ms"]["p50"],
            r["latency_ms"]["p99"],
            f"{r['events_delivered']}/{r['events_expected']}",
            r["api_rss_mb"]["idle"],
            r["api_rss_mb"]["connected"],
            r["api_rss_mb"]["peak"],
            r["api_rss_mb"]["after"],
        ]
        for r in results
    ]
    print_table(
        f"SSE fan-out on one API process ({args.events} events per task, "
        f"{args.interval * 1000:g} ms apart); latency ms, RSS MB",
        ["scenario", "p50", "p99", "delivered", "RSS idle", "connected", "peak", "after"],
        rows,
    )
    write_results(
        NAME,
        {
            "params": {
                "subscribers": args.subscribers,
                "tasks": args.tasks,
                "events": args.events,
                "interval": args.interval,
            },
            "results": results,
            "environment": info,
        },
    )


if __name__ == "__main__":
    p = parser(__doc__, timeout=300)
    p.add_argument("--subscribers", type=int, default=1000, help="concurrent streams (1000)")
    p.add_argument("--tasks", type=int, default=100, help="tasks of the spread scenario (100)")
    p.add_argument("--events", type=int, default=10, help="progress events per task (10)")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between events")
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

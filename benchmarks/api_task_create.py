"""Task creation through the API: ``POST /v1/tasks`` from ``--clients`` concurrent clients.

A real ``processgpt api`` process (subprocess, 127.0.0.1, free port); no worker runs, so the
tasks stay PENDING (the tenant's pending limit is raised above ``--tasks`` so backpressure
does not answer 429). Each client sends its share of ``--tasks`` requests one after the
other over a kept-alive connection; the first ``--warmup`` requests are not counted. Reports
tasks/s (requests answered 201 / wall time) and request latency p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from _common import (
    fresh_database,
    open_processgpt,
    parser,
    postgres_server,
    print_table,
    run,
    server_info,
    summarize,
    write_results,
)
from api_event_latency import ApiProcess

from processgpt.db.api_keys import ApiKeyRepository

NAME = "api_task_create"


async def post_tasks(
    url: str, key: str, count: int, clients: int, latencies: list[float] | None
) -> int:
    """``count`` POSTs from ``clients`` concurrent clients; return how many were created."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    created = 0
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=30
    ) as http:

        async def one_client(share: int, offset: int) -> None:
            nonlocal created
            for i in range(share):
                body = {"agent_orch": "demo", "query": f"q{offset + i}", "input": {"i": i}}
                t0 = time.perf_counter()
                response = await http.post("/v1/tasks", json=body)
                if latencies is not None:
                    latencies.append((time.perf_counter() - t0) * 1000)
                if response.status_code == 201:
                    created += 1

        shares = [count // clients + (1 if c < count % clients else 0) for c in range(clients)]
        offsets = [sum(shares[:c]) for c in range(clients)]
        await asyncio.gather(*(one_client(s, o) for s, o in zip(shares, offsets, strict=True)))
    return created


async def main(args: argparse.Namespace) -> None:
    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        db = await open_processgpt(dsn, max_size=4)
        key = (await ApiKeyRepository(db).create("bench")).key
        await db.execute(
            "UPDATE tenants SET max_pending_tasks = $1 WHERE id = 'bench'",
            args.tasks + args.warmup + 1,
        )
        api = ApiProcess(dsn, {"PROCESSGPT_POOL_SIZE": str(args.api_pool_size)})
        try:
            url = await api.started()
            await post_tasks(url, key, args.warmup, args.clients, None)
            latencies: list[float] = []
            t0 = time.perf_counter()
            created = await post_tasks(url, key, args.tasks, args.clients, latencies)
            elapsed = time.perf_counter() - t0
            rss = api.rss_mb()
            pending = await db.fetchval("SELECT count(*) FROM todolist WHERE status = 'PENDING'")
        finally:
            api.stop()
            info = await server_info(dsn)
            await db.close()

    stats = summarize(latencies)
    rate = created / elapsed
    print_table(
        f"task creation through the API ({args.tasks} POST /v1/tasks, {args.clients} concurrent "
        f"clients, API pool {args.api_pool_size})",
        ["measure", "value"],
        [
            ["tasks/s", rate],
            ["created (201)", f"{created}/{args.tasks}"],
            ["latency p50 ms", stats["p50"]],
            ["latency p90 ms", stats["p90"]],
            ["latency p99 ms", stats["p99"]],
            ["latency max ms", stats["max"]],
            ["API RSS MB", rss],
        ],
    )
    write_results(
        NAME,
        {
            "params": {
                "tasks": args.tasks,
                "clients": args.clients,
                "warmup": args.warmup,
                "api_pool_size": args.api_pool_size,
            },
            "results": {
                "tasks_per_second": rate,
                "created": created,
                "pending_in_db": pending,
                "latency_ms": stats,
                "api_rss_mb": rss,
            },
            "environment": info,
        },
    )


if __name__ == "__main__":
    p = parser(__doc__, timeout=180)
    p.add_argument("--tasks", type=int, default=5000, help="requests measured (5000)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    p.add_argument("--warmup", type=int, default=200, help="requests sent first, not counted")
    p.add_argument("--api-pool-size", type=int, default=10, help="the API's connection pool")
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

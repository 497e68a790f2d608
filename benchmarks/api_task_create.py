"""Task creation through the API: ``POST /v1/tasks`` from ``--clients`` concurrent clients.

A real ``processgpt api`` process (subprocess, 127.0.0.1, free port); no worker runs, so the
tasks stay PENDING (the tenant's pending limit is raised above ``--tasks`` so backpressure
does not answer 429). Each client sends its share of ``--tasks`` requests one after the
other over a kept-alive connection; the first ``--warmup`` requests are not counted. Reports
tasks/s (requests answered 201 / wall time), request latency p50/p99, and the CPU each
process spent per request: the API, the clients and Postgres share the machine's cores.

The clients speak HTTP/1.1 directly over their sockets (``--client raw``, the default): httpx
spends about as much CPU per request as the API does, so with it the benchmark measures
mostly its own clients (``--client httpx`` to see that).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from urllib.parse import urlsplit

import httpx
import psutil
from _common import (
    CpuMeter,
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


class RawHttpClient:
    """One kept-alive HTTP/1.1 connection sending JSON POSTs: the least CPU a client can
    spend per request, so that the API's cost is what the benchmark measures. Responses must
    carry a Content-Length (FastAPI's JSON responses do)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self._address = (parts.hostname, parts.port)
        self._head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": parts.netloc, **headers}.items())
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post_json(self, path: str, body: object) -> int:
        """POST ``body``; the response's status code (its body is read and dropped)."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(*self._address)
        reader, writer = self._streams
        payload = json.dumps(body).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\n{self._head}Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if length is None:
            raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        await reader.readexactly(int(length[1]))
        if re.search(rb"(?i)\r\nconnection: *close", head):
            await self.close()
        return int(head[9:12])

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            await writer.wait_closed()


async def post_tasks_raw(
    url: str, key: str, count: int, clients: int, latencies: list[float] | None
) -> int:
    """:func:`post_tasks` with :class:`RawHttpClient` clients."""
    created = 0

    async def one_client(share: int, offset: int) -> None:
        nonlocal created
        http = RawHttpClient(url, {"Authorization": f"Bearer {key}"})
        try:
            for i in range(share):
                body = {"agent_orch": "demo", "query": f"q{offset + i}", "input": {"i": i}}
                t0 = time.perf_counter()
                status = await http.post_json("/v1/tasks", body)
                if latencies is not None:
                    latencies.append((time.perf_counter() - t0) * 1000)
                if status == 201:
                    created += 1
        finally:
            await http.close()

    await asyncio.gather(*(one_client(s, o) for s, o in _shares(count, clients)))
    return created


def _shares(count: int, clients: int) -> list[tuple[int, int]]:
    """Each client's number of requests and the index of its first."""
    shares = [count // clients + (1 if c < count % clients else 0) for c in range(clients)]
    return [(share, sum(shares[:c])) for c, share in enumerate(shares)]


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

        await asyncio.gather(*(one_client(s, o) for s, o in _shares(count, clients)))
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
        send = post_tasks_raw if args.client == "raw" else post_tasks
        try:
            url = await api.started()
            await send(url, key, args.warmup, args.clients, None)
            latencies: list[float] = []
            meter = await CpuMeter.for_server(dsn)
            api_cpu = psutil.Process(api.proc.pid)
            api_before = sum(api_cpu.cpu_times()[:2])
            meter.start()
            t0 = time.perf_counter()
            created = await send(url, key, args.tasks, args.clients, latencies)
            elapsed = time.perf_counter() - t0
            meter.stop()
            api_s = sum(api_cpu.cpu_times()[:2]) - api_before
            rss = api.rss_mb()
            pending = await db.fetchval("SELECT count(*) FROM todolist WHERE status = 'PENDING'")
        finally:
            api.stop()
            info = await server_info(dsn)
            await db.close()

    stats = summarize(latencies)
    rate = created / elapsed
    cpu = {
        "api_us_per_request": api_s / args.tasks * 1e6,
        "clients_us_per_request": meter.python_s / args.tasks * 1e6,
        "postgres_us_per_request": meter.postgres_s / args.tasks * 1e6,
    }
    print_table(
        f"task creation through the API ({args.tasks} POST /v1/tasks, {args.clients} concurrent "
        f"{args.client} clients, API pool {args.api_pool_size})",
        ["measure", "value"],
        [
            ["tasks/s", rate],
            ["created (201)", f"{created}/{args.tasks}"],
            ["latency p50 ms", stats["p50"]],
            ["latency p90 ms", stats["p90"]],
            ["latency p99 ms", stats["p99"]],
            ["latency max ms", stats["max"]],
            ["API CPU µs per request", cpu["api_us_per_request"]],
            ["clients' CPU µs per request", cpu["clients_us_per_request"]],
            ["Postgres CPU µs per request", cpu["postgres_us_per_request"]],
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
                "client": args.client,
            },
            "results": {
                "tasks_per_second": rate,
                "created": created,
                "pending_in_db": pending,
                "latency_ms": stats,
                "cpu": cpu,
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
    p.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="HTTP/1.1 written directly on the sockets (raw), or httpx",
    )
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

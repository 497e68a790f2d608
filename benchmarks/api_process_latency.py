"""Process instances through the API: each client starts an instance of a two-step human
process (``POST /v1/processes``), completes both of its work items (``POST
/v1/tasks/{id}/complete``, each the step's transaction: lock, engine, work items, history,
NOTIFY) and reads it (``GET /v1/processes/{id}``), one instance after the other.

A real ``processgpt api`` process (subprocess, 127.0.0.1, free port); no worker is needed
(every step is a person's). Reports instances/s and each request's latency p50/p99; the API,
the clients (httpx) and Postgres share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

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
from processgpt.domain.roles import Role

NAME = "api_process_latency"

DEFINITION: dict[str, Any] = {
    "processDefinitionId": "bench_approval",
    "roles": [{"name": "clerk", "default": "clerk@example.com"}],
    "events": [{"id": "start", "type": "startEvent"}, {"id": "end", "type": "endEvent"}],
    "activities": [
        {"id": "request", "type": "userTask", "role": "clerk", "tool": "formHandler:bench_form"},
        {"id": "approve", "type": "userTask", "role": "clerk"},
    ],
    "sequences": [
        {"id": "f1", "source": "start", "target": "request"},
        {"id": "f2", "source": "request", "target": "approve"},
        {"id": "f3", "source": "approve", "target": "end"},
    ],
}
FORMS = {"bench_form": {"fields": [{"key": "amount", "type": "number"}]}}


async def _client_run(
    url: str, key: str, instances: int, timings: dict[str, list[float]] | None
) -> int:
    """Run ``instances`` instances to their end; the number that completed."""
    completed = 0
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:

        async def timed(name: str, method: str, path: str, body: Any = None) -> Any:
            t0 = time.perf_counter()
            response = await client.request(method, path, json=body)
            if timings is not None:
                timings[name].append((time.perf_counter() - t0) * 1000)
            response.raise_for_status()
            return response.json()

        for i in range(instances):
            view = await timed("start", "POST", "/v1/processes", {"proc_def_id": "bench_approval"})
            for output in ({"bench_form": {"amount": i}}, {"ok": True}):
                (task,) = view["open_tasks"]
                path = f"/v1/tasks/{task['id']}/complete"
                await timed("complete", "POST", path, {"output": output})
                view = await timed("get", "GET", f"/v1/processes/{view['id']}")
            completed += view["status"] == "COMPLETED"
    return completed


async def _clients(url: str, key: str, instances: int, clients: int, timings: Any) -> int:
    share = [instances // clients + (1 if i < instances % clients else 0) for i in range(clients)]
    done = await asyncio.gather(*(_client_run(url, key, n, timings) for n in share if n))
    return sum(done)


async def main(args: argparse.Namespace) -> None:
    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        db = await open_processgpt(dsn, max_size=4)
        key = (await ApiKeyRepository(db).create("bench", role=Role.ADMIN)).key
        api = ApiProcess(dsn)
        try:
            url = await api.started()
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                published = await client.post(
                    "/v1/process-definitions",
                    json={"id": "bench_approval", "definition": DEFINITION, "forms": FORMS},
                    headers={"Authorization": f"Bearer {key}"},
                )
                published.raise_for_status()
            await _clients(url, key, args.warmup, args.clients, None)
            timings: dict[str, list[float]] = {"start": [], "complete": [], "get": []}
            t0 = time.perf_counter()
            completed = await _clients(url, key, args.instances, args.clients, timings)
            elapsed = time.perf_counter() - t0
        finally:
            api.stop()
            info = await server_info(dsn)
            await db.close()

    stats = {name: summarize(values) for name, values in timings.items()}
    rate = completed / elapsed
    rows: list[list[object]] = [["instances/s (start + 2 completions + 2 reads)", rate]]
    for name, label in (
        ("start", "POST /v1/processes"),
        ("complete", "POST /v1/tasks/{id}/complete"),
        ("get", "GET /v1/processes/{id}"),
    ):
        rows += [[f"{label} p50 ms", stats[name]["p50"]], [f"{label} p99 ms", stats[name]["p99"]]]
    print_table(
        f"process instances through the API ({args.instances} instances, {args.clients} clients)",
        ["measure", "value"],
        rows,
    )
    write_results(
        NAME,
        {
            "params": {
                "instances": args.instances,
                "clients": args.clients,
                "warmup": args.warmup,
            },
            "results": {"instances_per_second": rate, "completed": completed, "latency_ms": stats},
            "environment": info,
        },
    )


if __name__ == "__main__":
    p = parser(__doc__, timeout=300)
    p.add_argument("--instances", type=int, default=500, help="instances measured (500)")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    p.add_argument("--warmup", type=int, default=20, help="instances run first, not counted")
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

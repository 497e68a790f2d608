"""Memory of a real worker process (``processgpt worker --agent demo``).

RSS (and USS, the memory unique to the process) is read with psutil: once the worker has been
idle for ``--settle`` seconds after logging "worker started", the peak while it runs
``--tasks`` demo tasks, and again once it is idle after them. For scale, the same is read for a
bare interpreter that only imports the CLI. Target (issue): <= 100 MB RSS idle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

import psutil
from _common import (
    count_status,
    fresh_database,
    insert_tasks,
    parser,
    postgres_server,
    print_table,
    run,
    server_info,
    verdict,
    write_results,
)

from processgpt.db.database import Database

NAME = "worker_memory"
TARGET_IDLE_MB = 100.0
MB = 1024 * 1024
IMPORTS_ONLY = "import sys, processgpt.cli, processgpt.agents.demo; print('ready', flush=True); "
IMPORTS_ONLY += "sys.stdin.read()"


def memory(pid: int) -> dict[str, float]:
    info = psutil.Process(pid).memory_full_info()
    return {"rss_mb": info.rss / MB, "uss_mb": info.uss / MB}


async def stop(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM, then wait (SIGKILL after 30 s)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), timeout=30)
    except TimeoutError:
        proc.kill()
        return await proc.wait()


async def imports_only() -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        IMPORTS_ONLY,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        return memory(proc.pid)
    finally:
        await stop(proc)


async def measure_worker(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    started = asyncio.Event()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "processgpt.cli",
        "worker",
        "--agent",
        "demo",
        "--concurrency",
        str(args.concurrency),
        env={**os.environ, "DATABASE_URL": dsn},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )

    async def drain_stderr() -> None:  # keeps the pipe from filling up
        assert proc.stderr is not None
        async for line in proc.stderr:
            if b"worker started" in line:
                started.set()

    reader = asyncio.create_task(drain_stderr())
    db: Database | None = None
    try:
        await asyncio.wait_for(started.wait(), timeout=60)
        await asyncio.sleep(args.settle)
        idle = memory(proc.pid)
        db = await Database.connect(dsn, max_size=2)  # the worker migrated the schema
        await insert_tasks(db, args.tasks, "demo", '{"steps": 1, "delay": 0}')
        peak = dict(idle)
        while await count_status(db, "DONE") < args.tasks:
            if proc.returncode is not None:
                raise RuntimeError(f"the worker exited with status {proc.returncode}")
            now = memory(proc.pid)
            peak = {k: max(peak[k], now[k]) for k in peak}
            await asyncio.sleep(0.05)
        await asyncio.sleep(args.settle)
        after = memory(proc.pid)
    finally:
        if db is not None:
            await db.close()
        status = await stop(proc)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return {"idle": idle, "peak_running": peak, "idle_after_tasks": after, "exit_status": status}


async def main(args: argparse.Namespace) -> None:
    baseline = await imports_only()
    async with postgres_server(args.database_url) as server, fresh_database(server) as dsn:
        worker = await measure_worker(dsn, args)
        info = await server_info(dsn)

    rows = [
        ["interpreter + CLI imports only", baseline["rss_mb"], baseline["uss_mb"]],
        [
            f"worker idle ({args.settle:g} s after start)",
            worker["idle"]["rss_mb"],
            worker["idle"]["uss_mb"],
        ],
        [
            f"worker peak while running {args.tasks} tasks",
            worker["peak_running"]["rss_mb"],
            worker["peak_running"]["uss_mb"],
        ],
        [
            "worker idle after the tasks",
            worker["idle_after_tasks"]["rss_mb"],
            worker["idle_after_tasks"]["uss_mb"],
        ],
    ]
    print_table(
        f"worker memory, MB (processgpt worker --agent demo --concurrency {args.concurrency})",
        ["state", "RSS MB", "USS MB"],
        rows,
    )
    idle_rss = worker["idle"]["rss_mb"]
    print(
        f"target idle RSS <= {TARGET_IDLE_MB:g} MB: {idle_rss:.1f} MB, "
        f"{verdict(idle_rss, TARGET_IDLE_MB, higher_is_better=False)}; "
        f"worker exit status after SIGTERM: {worker['exit_status']}"
    )
    write_results(
        NAME,
        {
            "params": {
                "tasks": args.tasks,
                "concurrency": args.concurrency,
                "settle_s": args.settle,
            },
            "imports_only": baseline,
            "worker": worker,
            "target_idle_rss_mb": TARGET_IDLE_MB,
            "meets_target": idle_rss <= TARGET_IDLE_MB,
            "environment": info,
        },
    )


if __name__ == "__main__":
    p = parser(__doc__, timeout=180)
    p.add_argument("--tasks", type=int, default=200, help="demo tasks run (default 200)")
    p.add_argument("--concurrency", type=int, default=10, help="worker concurrency")
    p.add_argument("--settle", type=float, default=5.0, help="idle seconds before reading")
    arguments = p.parse_args()
    run(main(arguments), arguments.timeout)

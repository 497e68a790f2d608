"""A database outage under load: the API answers 503 ``database_unavailable`` with
``Retry-After`` (never 500, never a dropped connection), logs one line per failure (no
traceback storm), is not ready while it lasts, and loses no accepted task."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.db.embedded import EmbeddedPostgres
from processgpt.db.migrate import migrate
from processgpt.domain.roles import Role
from tests.support import StartProcess, api_url, pg_ctl, start_worker_process, wait_until

OUTAGE_SECONDS = 10.0
CLIENTS = 6


class Load:
    """Clients creating and reading tasks as fast as the API answers, recording every answer
    (and every connection error, which must never happen)."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.answers: list[tuple[float, str, int, dict[str, Any], dict[str, str]]] = []
        self.broken: list[str] = []
        self.accepted: list[str] = []
        self.stop = asyncio.Event()

    async def client(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30) as http:
            while not self.stop.is_set():
                for method, path, body in (
                    ("POST", "/v1/tasks", {"agent_orch": "demo", "query": "q"}),
                    (
                        "GET",
                        f"/v1/tasks/{self.accepted[-1] if self.accepted else uuid.uuid4()}",
                        None,
                    ),
                    ("GET", "/v1/tasks?limit=5", None),
                ):
                    try:
                        response = await http.request(method, path, json=body)
                    except httpx.HTTPError as exc:
                        self.broken.append(f"{method} {path}: {type(exc).__name__}")
                        continue
                    payload = response.json()
                    self.answers.append(
                        (
                            time.monotonic(),
                            method,
                            response.status_code,
                            payload,
                            dict(response.headers),
                        )
                    )
                    if method == "POST" and response.status_code == 201:
                        self.accepted.append(payload["id"])
                    if response.status_code == 503:
                        await asyncio.sleep(0.05)


async def test_a_database_outage_under_load(tmp_path: Path, start_process: StartProcess) -> None:
    server = await asyncio.to_thread(EmbeddedPostgres, tmp_path / "pg")
    data_dir, dsn = server.data_dir, server.dsn
    socket_dir = dsn.partition("host=")[2]
    try:
        db = await Database.connect(dsn)
        await migrate(db)
        key = (await ApiKeyRepository(db).create("acme", "load", Role.MEMBER)).key
        await db.close()
        api = start_process("api", dsn=dsn, env={"PROCESSGPT_API_PORT": "0"})
        url = await api_url(api)
        await start_worker_process(start_process, dsn=dsn)
        load = Load(url, key)
        clients = [asyncio.create_task(load.client()) for _ in range(CLIENTS)]
        await wait_until(lambda: len(load.accepted) >= 20, timeout=30)

        await asyncio.to_thread(pg_ctl, data_dir, "-w", "-m", "fast", "stop")
        down_at = time.monotonic()
        async with httpx.AsyncClient(base_url=url) as probe:
            await asyncio.sleep(1.0)
            not_ready = await probe.get("/readyz")
            alive = await probe.get("/livez")  # liveness never asks the database
            await asyncio.sleep(OUTAGE_SECONDS - 1.0)
            log = data_dir / "restart.log"
            up_at = time.monotonic()  # it answers before `pg_ctl -w` returns
            await asyncio.to_thread(
                pg_ctl, data_dir, "-w", "-l", str(log), "-o", f'-h "" -k {socket_dir}', "start"
            )
            accepted_before = len(load.accepted)
            await wait_until(lambda: len(load.accepted) >= accepted_before + 20, timeout=30)

            async def is_ready() -> bool:
                return (await probe.get("/readyz")).status_code == 200

            ready = await wait_until(is_ready, timeout=30)
        load.stop.set()
        await asyncio.gather(*clients)

        assert not load.broken, load.broken[:10]  # never a dropped connection
        statuses = [status for _, _, status, _, _ in load.answers]
        assert set(statuses) <= {200, 201, 404, 503}, sorted(set(statuses))
        during = [a for a in load.answers if down_at + 0.5 < a[0] < up_at]
        assert during and all(a[2] == 503 for a in during), {a[2] for a in during}
        for _, _, status, payload, headers in load.answers:
            if status == 503:
                assert payload["error"]["code"] == "database_unavailable"
                assert int(headers["retry-after"]) > 0
            assert status != 404 or payload["error"]["code"] == "task_not_found"
        assert not_ready.status_code == 503 and not_ready.json()["error"]["code"] == "not_ready"
        assert alive.status_code == 200 and alive.json() == {"status": "ok"}
        assert ready

        api_log = api.log()
        assert "Traceback" not in api_log and "internal_error" not in api_log
        failures = statuses.count(503)
        logged = api_log.count("database unavailable")
        assert 0 < logged <= failures, (logged, failures)
        listener_lines = api_log.count("listener")
        assert listener_lines <= 10, listener_lines  # backs off: not one line per attempt

        db = await Database.connect(dsn)
        try:  # every accepted task is there and runs to the end
            await wait_until(
                lambda: db.fetchval("SELECT count(*) = 0 FROM todolist WHERE status <> 'DONE'"),
                timeout=120,
            )
            found = await db.fetchval(
                "SELECT count(*) FROM todolist WHERE id = ANY($1::uuid[])", load.accepted
            )
            assert found == len(load.accepted)
        finally:
            await db.close()
    finally:
        await asyncio.to_thread(pg_ctl, data_dir, "-m", "immediate", "stop")

"""/metrics with a real API process and a real worker process: each counter and histogram
moves exactly as the tasks did (a retry moves the retry counter, running out of attempts the
dead-letter counter, a person's cancellation the API's cancel counter), the queue gauges show
the database's open work, and nothing in it names a tenant."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.api.conftest import start_api
from tests.support import StartProcess, api_url, wait_until

FLAKY = "tests.agents.executors:FlakyExecutor"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels (the Prometheus text parser)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _scrape(client: httpx.AsyncClient, url: str) -> tuple[Samples, str]:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text), response.text


async def test_metrics_move_exactly_as_the_tasks_did(
    db: Database, start_process: StartProcess
) -> None:
    key = (await ApiKeyRepository(db).create("default", role=Role.ADMIN)).key
    fast = {"PROCESSGPT_METRICS_INTERVAL": "0.3"}
    _api, url = await start_api(start_process, fast)
    port = _free_port()
    worker = start_process(
        "worker",
        "--agent",
        "flaky",
        "--executor",
        FLAKY,
        "--concurrency",
        "4",
        env={
            **fast,
            "PROCESSGPT_METRICS_PORT": str(port),
            "PROCESSGPT_RETRY_BASE_DELAY": "0.05",
            "PROCESSGPT_RETRY_MAX_DELAY": "0.1",
        },
    )
    await worker.wait_for_log("worker started")
    worker_url = f"http://127.0.0.1:{port}/metrics"
    async with (
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api,
        httpx.AsyncClient(timeout=10) as scraper,
    ):
        worker_before, _ = await _scrape(scraper, worker_url)
        api_before, _ = await _scrape(scraper, f"{url}/metrics")
        assert value(worker_before, "processgpt_worker_slots") == 4

        async def submit(**body: Any) -> dict[str, Any]:
            response = await api.post("/v1/tasks", json={"agent_orch": "flaky", **body})
            assert response.status_code == 201, response.text
            task: dict[str, Any] = response.json()
            return task

        ok = await submit(input={})  # completes at once
        once = await submit(input={"fail_attempts": 1})  # one retry, then completes
        dead = await submit(input={"fail_attempts": 9}, max_attempts=2)  # a retry, dead letter
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        waiting = await submit(run_at=later)
        cancelled = await submit(run_at=later)
        response = await api.post(f"/v1/tasks/{cancelled['id']}/cancel", json={})
        assert response.status_code == 200, response.text

        async def status(task: Mapping[str, Any]) -> str:
            got = (await api.get(f"/v1/tasks/{task['id']}")).json()
            return str(got["status"])

        async def all_ended() -> bool:
            return [await status(t) for t in (ok, once, dead)] == ["DONE", "DONE", "FAILED"]

        await wait_until(all_ended, timeout=30)

        async def settled() -> Samples | None:  # the worker counts once a write is durable
            after, _ = await _scrape(scraper, worker_url)
            ended = moved(worker_before, after, "processgpt_tasks_completed_total", agent="flaky")
            return after if ended == 2 else None

        worker_after = await wait_until(settled, timeout=10)
        # five attempts: ok 1, once 2, dead 2
        assert (
            moved(worker_before, worker_after, "processgpt_tasks_claimed_total", agent="flaky") == 5
        )
        for name, expected in [
            ("processgpt_tasks_completed_total", 2),
            ("processgpt_tasks_retried_total", 2),
            ("processgpt_tasks_failed_total", 1),
            ("processgpt_tasks_dead_lettered_total", 1),
            ("processgpt_tasks_cancelled_total", 0),  # the API wrote that one
        ]:
            assert moved(worker_before, worker_after, name, agent="flaky") == expected, name
        for outcome, expected in [("completed", 2), ("retried", 2), ("failed", 1)]:
            for histogram in ("processgpt_task_run_seconds", "processgpt_task_wait_seconds"):
                count = moved(
                    worker_before,
                    worker_after,
                    f"{histogram}_count",
                    agent="flaky",
                    outcome=outcome,
                )
                assert count == expected, (histogram, outcome)
                inf = moved(
                    worker_before,
                    worker_after,
                    f"{histogram}_bucket",
                    agent="flaky",
                    outcome=outcome,
                    le="+Inf",
                )
                assert inf == expected, (histogram, outcome)
        assert moved(worker_before, worker_after, "processgpt_claim_duration_seconds_count") >= 3
        assert moved(worker_before, worker_after, "processgpt_event_write_batch_events_count") >= 1
        assert value(worker_after, "processgpt_worker_slots_in_use") == 0

        # The API counted the cancellation; its gauges show the deployment's open work.
        async def api_gauges() -> Samples | None:
            after, _text = await _scrape(scraper, f"{url}/metrics")
            # once a snapshot taken after the last task ended reaches the API
            pending = value(after, "processgpt_tasks_pending", agent="flaky")
            running = value(after, "processgpt_tasks_in_progress", agent="flaky")
            return after if (pending, running) == (1, 0) else None

        api_after = await wait_until(api_gauges, timeout=10)
        assert moved(api_before, api_after, "processgpt_tasks_cancelled_total", agent="flaky") == 1
        assert value(api_after, "processgpt_tasks_pending_due", agent="flaky") == 0
        assert value(api_after, "processgpt_tasks_in_progress", agent="flaky") == 0
        assert value(api_after, "processgpt_metrics_snapshot_age_seconds") < 5
        # the worker's listener shows the same deployment gauges
        worker_gauges = await wait_until(lambda: _worker_pending(scraper, worker_url), timeout=10)
        assert worker_gauges == 1
        assert waiting["status"] == "PENDING"

        # No tenant, task or key in any label of either exposition.
        for target in (worker_url, f"{url}/metrics"):
            _, text = await _scrape(scraper, target)
            for secret in ("default", key, ok["id"], dead["id"]):
                assert f'"{secret}"' not in text

        # The console's summary: the caller's tenant only.
        summary = (await api.get("/v1/metrics/summary")).json()
        queue = {q["agent"]: q for q in summary["queue"]}
        assert queue["flaky"]["pending"] == 1
        timings = {t["agent"]: t for t in summary["timings"]}
        assert timings["flaky"]["done"] == 2 and timings["flaky"]["failed"] == 1
        assert timings["flaky"]["cancelled"] == 0  # never claimed: no run time
        other = (await ApiKeyRepository(db).create("globex", role=Role.ADMIN)).key
        theirs = await api.get("/v1/metrics/summary", headers={"Authorization": f"Bearer {other}"})
        assert theirs.json()["queue"] == [] and theirs.json()["timings"] == []
        assert (
            await api.get("/v1/metrics/summary", headers={"Authorization": ""})
        ).status_code == 401
        bad = await api.get("/v1/metrics/summary", params={"window_seconds": "-1"})
        assert bad.status_code == 422


async def _worker_pending(scraper: httpx.AsyncClient, url: str) -> float | None:
    samples, _ = await _scrape(scraper, url)
    pending = value(samples, "processgpt_tasks_pending", agent="flaky")
    return pending if pending == 1 else None


async def test_up_serves_its_workers_metrics_on_the_api(
    db: Database, start_process: StartProcess, tmp_path: Path
) -> None:
    """``processgpt up`` runs the API and a worker in one process: the API's /metrics has the
    worker's counters and slots."""
    key = (await ApiKeyRepository(db).create("default", role=Role.ADMIN)).key
    up = start_process("up", "--port", "0", "--concurrency", "3", "--data-dir", str(tmp_path))
    await up.wait_for_log("processgpt is up")
    url = await api_url(up)
    async with (
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api,
        httpx.AsyncClient(timeout=10) as scraper,
    ):
        before, _ = await _scrape(scraper, f"{url}/metrics")
        assert value(before, "processgpt_worker_slots") == 3
        response = await api.post("/v1/tasks", json={"agent_orch": "demo", "query": "hi"})
        assert response.status_code == 201, response.text

        async def completed() -> Samples | None:
            after, _ = await _scrape(scraper, f"{url}/metrics")
            done = moved(before, after, "processgpt_tasks_completed_total", agent="demo")
            return after if done == 1 else None

        after = await wait_until(completed, timeout=30)
        assert moved(before, after, "processgpt_tasks_claimed_total", agent="demo") == 1
        assert (
            moved(
                before,
                after,
                "processgpt_task_run_seconds_count",
                agent="demo",
                outcome="completed",
            )
            == 1
        )


async def test_the_api_serves_no_metrics_when_told_not_to(start_process: StartProcess) -> None:
    _api, url = await start_api(start_process, {"PROCESSGPT_METRICS_ON_API": "false"})
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"

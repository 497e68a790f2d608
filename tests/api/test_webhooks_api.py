"""``/v1/webhooks`` against a real API process and real worker processes, delivering to a
real HTTP receiver on 127.0.0.1: Standard Webhooks signatures checked with the reference
``standardwebhooks`` package, retries (500, 429 with Retry-After), 410 disabling the
endpoint, deliveries dead after the (short) retry schedule, a worker SIGKILLed mid-delivery
(the delivery is sent again with the same webhook-id), internal targets refused without
``PROCESSGPT_WEBHOOK_ALLOW_PRIVATE``, and tenant isolation."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from standardwebhooks import Webhook

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.acceptance.test_metrics import _free_port, parse, value
from tests.api.conftest import start_api
from tests.api.test_tasks_api import error_code
from tests.support import ProcessGPTProcess, StartProcess, wait_until
from tests.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.slow


@dataclass
class Setup:
    url: str
    key_a: str  # tenant "acme", admin
    key_b: str  # tenant "globex", admin
    member_a: str  # tenant "acme", member
    env: dict[str, str]
    start_process: StartProcess

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key or self.key_a}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def worker(self, **env: str) -> ProcessGPTProcess:
        proc = self.start_process(
            "worker", "--agent", "demo", "--concurrency", "4", env={**self.env, **env}
        )
        await proc.wait_for_log("worker started")
        return proc


@pytest.fixture
async def setup(db: Database, start_process: StartProcess) -> AsyncIterator[Setup]:
    keys = ApiKeyRepository(db)
    key_a = (await keys.create("acme", role=Role.ADMIN)).key
    key_b = (await keys.create("globex", role=Role.ADMIN)).key
    member_a = (await keys.create("acme", role=Role.MEMBER)).key
    env = {
        "PROCESSGPT_SECRET_KEYS": Fernet.generate_key().decode(),
        "PROCESSGPT_WEBHOOK_ALLOW_PRIVATE": "true",
        "PROCESSGPT_WEBHOOK_RETRY_SCHEDULE": "0.2,0.2",
        "PROCESSGPT_WEBHOOK_LEASE_SECONDS": "3",
    }
    _server, url = await start_api(start_process, env)
    yield Setup(url, key_a, key_b, member_a, env, start_process)


async def make_endpoint(client: httpx.AsyncClient, url: str, **fields: Any) -> dict[str, Any]:
    made = await client.post("/v1/webhooks", json={"url": url, **fields})
    assert made.status_code == 201, made.text
    endpoint: dict[str, Any] = made.json()
    return endpoint


async def submit(client: httpx.AsyncClient, **task_input: Any) -> str:
    body = {"agent_orch": "demo", "query": "hi", "input": {"steps": 0, **task_input}}
    made = await client.post("/v1/tasks", json=body)
    assert made.status_code in (200, 201), made.text
    return str(made.json()["id"])


async def deliveries(client: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    page = await client.get(f"/v1/webhooks/{endpoint_id}/deliveries")
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


async def settled(client: httpx.AsyncClient, endpoint_id: str, count: int = 1) -> list[Any]:
    async def check() -> list[dict[str, Any]] | None:
        items = await deliveries(client, endpoint_id)
        done = [d for d in items if d["status"] != "PENDING"]
        return items if len(done) >= count else None

    result: list[Any] = await wait_until(check, timeout=30, interval=0.1)
    return result


async def test_an_endpoint_gets_signed_deliveries_of_the_types_it_asked_for(setup: Setup) -> None:
    with webhook_receiver() as receiver:
        await setup.worker()
        async with setup.client() as client:
            endpoint = await make_endpoint(client, receiver.url)
            secret = endpoint["secret"]
            assert secret.startswith("whsec_") and len(secret) > 40
            only_failed = await make_endpoint(
                client, receiver.url + "?only=failed", event_types=["task.failed"]
            )
            # The secret is shown once: masked afterwards, in every answer.
            got = (await client.get(f"/v1/webhooks/{endpoint['id']}")).json()
            assert got["secret"] != secret and got["secret"].endswith(secret[-4:])
            listed = (await client.get("/v1/webhooks")).json()["items"]
            assert secret not in json.dumps(listed)
            assert endpoint["event_types"] == [] and only_failed["event_types"] == ["task.failed"]

            task_id = await submit(client)
            items = await settled(client, endpoint["id"])
            assert items[0]["status"] == "DELIVERED" and items[0]["event_type"] == "task.completed"
            assert items[0]["attempts"] == 1 and items[0]["attempt_log"][0]["status_code"] == 200
            request = receiver.requests[0]
            assert request.path == "/hook"
            # The reference implementation accepts the signature (and checks the timestamp).
            payload = Webhook(secret).verify(request.body, request.headers)
            assert payload["type"] == "task.completed"
            assert payload["data"]["task_id"] == task_id and payload["data"]["status"] == "DONE"
            assert request.headers["webhook-id"] == items[0]["webhook_id"]
            with pytest.raises(Exception, match="No matching signature"):
                Webhook(only_failed["secret"]).verify(request.body, request.headers)
            # The endpoint of failures only got nothing.
            assert await deliveries(client, only_failed["id"]) == []

            # A rotated secret signs the next deliveries, and for the overlap (24 h by
            # default) the old one too: a receiver knowing either verifies them.
            rotated = (await client.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret")).json()
            assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret
            overlap = _seconds(rotated["previous_secret_until"]) - _seconds(rotated["updated_at"])
            assert 86390 < overlap < 86410
            shown = (await client.get(f"/v1/webhooks/{endpoint['id']}")).json()
            assert rotated["secret"] not in json.dumps(shown) and secret not in json.dumps(shown)
            await submit(client)
            await settled(client, endpoint["id"], count=2)
            last = receiver.requests[-1]
            assert len(last.headers["webhook-signature"].split(" ")) == 2
            assert Webhook(rotated["secret"]).verify(last.body, last.headers)["type"]
            assert Webhook(secret).verify(last.body, last.headers)["type"]
            # A second rotation ends the first secret's overlap at once.
            third = (await client.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret")).json()
            await submit(client)
            await settled(client, endpoint["id"], count=3)
            last = receiver.requests[-1]
            Webhook(third["secret"]).verify(last.body, last.headers)
            Webhook(rotated["secret"]).verify(last.body, last.headers)
            with pytest.raises(Exception, match="No matching signature"):
                Webhook(secret).verify(last.body, last.headers)


async def test_a_black_hole_endpoint_with_a_backlog_does_not_delay_another_tenant(
    setup: Setup, db: Database
) -> None:
    """Tenant acme's endpoint accepts connections and never answers (attempts run into a 30 s
    timeout) and has 1,000 deliveries due; globex's delivery still goes out at once."""
    with webhook_receiver() as black_hole, webhook_receiver() as receiver:
        black_hole.hold = threading.Event()
        await setup.worker(PROCESSGPT_WEBHOOK_TIMEOUT="30", PROCESSGPT_WEBHOOK_CONCURRENCY="8")
        async with setup.client() as acme, setup.client(setup.key_b) as globex:
            await make_endpoint(acme, black_hole.url)
            await db.execute(
                """SELECT processgpt_emit('acme', 'task.completed', jsonb_build_object('n', i),
                                          NULL, NULL, NULL, NULL, NULL, NULL)
                   FROM generate_series(1, 1000) AS i"""
            )
            await wait_until(lambda: len(black_hole.requests) >= 4, timeout=20, interval=0.05)
            endpoint = await make_endpoint(globex, receiver.url)
            started = asyncio.get_running_loop().time()
            await submit(globex)
            await wait_until(lambda: len(receiver.requests) >= 1, timeout=20, interval=0.05)
            elapsed = asyncio.get_running_loop().time() - started
            items = await settled(globex, endpoint["id"])
        # The endpoint's cap (4 attempts in flight) held: the rest of the worker's senders
        # stayed free for globex, which did not wait for acme's 30 s timeouts.
        assert len(black_hole.requests) == 4
        assert elapsed < 10, elapsed
        assert items[0]["status"] == "DELIVERED" and items[0]["attempts"] == 1


async def test_failures_are_retried_with_the_same_webhook_id(setup: Setup) -> None:
    port = _free_port()
    with webhook_receiver() as receiver:
        receiver.answer(500, (429, {"Retry-After": "1"}), 200)
        await setup.worker(PROCESSGPT_METRICS_PORT=str(port), PROCESSGPT_METRICS_INTERVAL="0.2")
        async with setup.client() as client:
            endpoint = await make_endpoint(client, receiver.url, event_types=["task.completed"])
            await submit(client)
            items = await settled(client, endpoint["id"])
            # The worker counted each attempt by how it ended; the deployment gauges show
            # nothing left to send.
            async with httpx.AsyncClient(timeout=10) as scraper:

                async def scraped() -> dict[Any, float] | None:
                    text = (await scraper.get(f"http://127.0.0.1:{port}/metrics")).text
                    samples = parse(text)
                    attempts = "processgpt_webhook_attempts_total"
                    done = value(samples, attempts, outcome="delivered") == 1
                    return samples if done else None

                samples = await wait_until(scraped, timeout=10, interval=0.2)
        assert value(samples, "processgpt_webhook_attempts_total", outcome="retry") == 2
        assert ("processgpt_webhook_deliveries_pending", ()) in samples
        assert value(samples, "processgpt_webhook_attempt_seconds_count") == 3
        delivery = items[0]
        assert delivery["status"] == "DELIVERED" and delivery["attempts"] == 3
        assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 429, 200]
        assert receiver.ids() == [delivery["webhook_id"]] * 3
        # Retry-After (1 s) was honoured over the schedule's 0.2 s.
        _first, second, third = (a["at"] for a in delivery["attempt_log"])
        gap = _seconds(third) - _seconds(second)
        assert gap >= 0.9, delivery["attempt_log"]
        for request in receiver.requests:
            Webhook(endpoint["secret"]).verify(request.body, request.headers)


def _seconds(iso: str) -> float:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(iso).timestamp()


async def test_a_delivery_is_dead_after_the_retry_schedule(setup: Setup) -> None:
    with webhook_receiver() as receiver:
        receiver.default = 503
        await setup.worker()
        async with setup.client() as client:
            endpoint = await make_endpoint(client, receiver.url)
            await submit(client)
            items = await settled(client, endpoint["id"])
            delivery = items[0]
            assert delivery["status"] == "DEAD" and delivery["attempts"] == 3  # 1 + 2 retries
            assert delivery["last_error"] == "HTTP 503" and delivery["finished_at"] is not None
            assert len(receiver.requests) == 3
            # The endpoint stays enabled: the next event is delivered when it answers again.
            receiver.default = 200
            await submit(client)
            items = await settled(client, endpoint["id"], count=2)
            assert items[0]["status"] == "DELIVERED"


async def test_410_disables_the_endpoint(setup: Setup) -> None:
    with webhook_receiver() as receiver:
        receiver.answer(410)
        await setup.worker()
        async with setup.client() as client:
            endpoint = await make_endpoint(client, receiver.url)
            await submit(client)
            items = await settled(client, endpoint["id"])
            assert items[0]["status"] == "DEAD" and items[0]["attempts"] == 1
            got = (await client.get(f"/v1/webhooks/{endpoint['id']}")).json()
            assert got["enabled"] is False and "410" in got["disabled_reason"]
            # Nothing is written for a disabled endpoint.
            task_id = await submit(client)
            await wait_until(lambda: _status(client, task_id, "DONE"), timeout=20, interval=0.1)
            assert len(await deliveries(client, endpoint["id"])) == 1
            assert len(receiver.requests) == 1
            again = await client.patch(f"/v1/webhooks/{endpoint['id']}", json={"enabled": True})
            assert again.json()["enabled"] is True and again.json()["disabled_reason"] is None


async def _status(client: httpx.AsyncClient, task_id: str, status: str) -> bool:
    return bool((await client.get(f"/v1/tasks/{task_id}")).json()["status"] == status)


async def test_a_worker_killed_mid_delivery_leaves_it_to_be_sent_again(setup: Setup) -> None:
    with webhook_receiver() as receiver:
        receiver.hold = threading.Event()
        first = await setup.worker()
        async with setup.client() as client:
            endpoint = await make_endpoint(client, receiver.url)
            await submit(client)
            assert await asyncio.to_thread(receiver.arrived.wait, 30)
            first.signal(signal.SIGKILL)
            await first.wait()
            receiver.hold.set()  # the killed worker's request ends; nobody reads the answer
            receiver.hold = None
            await setup.worker()
            items = await settled(client, endpoint["id"])
        delivery = items[0]
        assert delivery["status"] == "DELIVERED" and delivery["attempts"] == 2
        # Sent twice, with one webhook-id: the receiver deduplicates on it.
        assert receiver.ids() == [delivery["webhook_id"]] * 2
        assert len(delivery["attempt_log"]) == 1  # only the second attempt ended


async def test_internal_targets_are_refused_without_the_flag(
    setup: Setup, start_process: StartProcess
) -> None:
    async with setup.client() as client:
        # Link-local (cloud metadata) stays refused even with the flag.
        metadata = await client.post("/v1/webhooks", json={"url": "http://169.254.169.254/x"})
        assert metadata.status_code == 422 and error_code(metadata) == "url_not_allowed"
        bad = await client.post("/v1/webhooks", json={"url": "ftp://example.com/x"})
        assert bad.status_code == 422 and error_code(bad) == "url_not_allowed"
        unknown = await client.post(
            "/v1/webhooks", json={"url": "https://example.com/x", "event_types": ["nope"]}
        )
        assert unknown.status_code == 422 and error_code(unknown) == "invalid_input"
    strict_env = {k: v for k, v in setup.env.items() if k != "PROCESSGPT_WEBHOOK_ALLOW_PRIVATE"}
    _server, strict_url = await start_api(start_process, strict_env)
    with webhook_receiver() as receiver:
        async with httpx.AsyncClient(
            base_url=strict_url, headers={"Authorization": f"Bearer {setup.key_a}"}
        ) as strict:
            for url in (receiver.url, "http://localhost:9/x", "http://10.1.2.3/x", "http://[::1]/"):
                refused = await strict.post("/v1/webhooks", json={"url": url})
                assert refused.status_code == 422, (url, refused.text)
                assert error_code(refused) == "url_not_allowed"
                assert "PROCESSGPT_WEBHOOK_ALLOW_PRIVATE" in refused.json()["error"]["message"]
            assert (await strict.get("/v1/webhooks")).json()["items"] == []
            # A name is checked where it resolves, at connect time (DNS rebinding): one that
            # resolves to an internal address is refused by a worker without the flag.
            host = socket.gethostname()
            port = receiver.url.split(":")[2].split("/")[0]
            name_url = f"http://{host}:{port}/hook"
            made = await strict.post("/v1/webhooks", json={"url": name_url})
            if made.status_code != 201:
                pytest.skip(f"the host name {host!r} is refused at create: {made.text}")
            await setup.worker(PROCESSGPT_WEBHOOK_ALLOW_PRIVATE="false")
            await submit(strict)
            items = await settled(strict, made.json()["id"])
        delivery = items[0]
        assert delivery["attempt_log"][0]["error"] == "refused: an internal address"
        assert receiver.requests == []


async def test_endpoints_and_deliveries_are_tenant_scoped(setup: Setup) -> None:
    with webhook_receiver() as receiver:
        await setup.worker()
        async with setup.client() as acme, setup.client(setup.key_b) as globex:
            endpoint = await make_endpoint(acme, receiver.url)
            await submit(globex)  # globex's task: no delivery to acme's endpoint
            await submit(acme)
            await settled(acme, endpoint["id"])
            path = f"/v1/webhooks/{endpoint['id']}"
            for response in (
                await globex.get(path),
                await globex.patch(path, json={"enabled": False}),
                await globex.post(path + "/rotate-secret"),
                await globex.get(path + "/deliveries"),
                await globex.delete(path),
            ):
                assert response.status_code == 404, response.text
                assert error_code(response) == "webhook_not_found"
            assert (await globex.get("/v1/webhooks")).json()["items"] == []
            assert len(await deliveries(acme, endpoint["id"])) == 1
            assert len(receiver.requests) == 1
            # Members read nothing of it: webhooks are the tenant admin's configuration.
            async with setup.client(setup.member_a) as member:
                assert (await member.get("/v1/webhooks")).status_code == 403
            gone = await acme.delete(path)
            assert gone.status_code == 204
            assert (await acme.get(path)).status_code == 404

"""The HTTP API against real api and worker processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from processgpt.db.database import Database
from tests.api.conftest import Api


async def wait_status(client: httpx.AsyncClient, task_id: str, status: str) -> dict[str, Any]:
    for _ in range(300):
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
        if task["status"] == status:
            return task  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} never reached {status}: {task}")


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


async def test_health_is_open_and_everything_else_needs_a_key(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anon:
        assert (await anon.get("/livez")).json() == {"status": "ok"}
        assert (await anon.get("/healthz")).json() == {"status": "ok"}
        assert (await anon.get("/readyz")).status_code == 200
        assert (await anon.get("/openapi.json")).status_code == 200
        for method, path in [
            ("GET", "/v1/tasks"),
            ("POST", "/v1/tasks"),
            ("GET", "/v1/tasks/00000000-0000-0000-0000-000000000000/stream"),
        ]:
            response = await anon.request(method, path)
            assert response.status_code == 401, (path, response.text)
            assert error_code(response) == "unauthorized"
        bad = await anon.get("/v1/tasks", headers={"Authorization": "Bearer pgpt_x_y"})
        assert bad.status_code == 401


async def test_task_lifecycle_over_http(api: Api) -> None:
    async with api.client() as client:
        created = await client.post(
            "/v1/tasks",
            json={"agent_orch": "demo", "query": "over http", "input": {"steps": 1, "delay": 0}},
            headers={"Idempotency-Key": "req-1"},
        )
        assert created.status_code == 201, created.text
        task = created.json()
        again = await client.post(
            "/v1/tasks",
            json={"agent_orch": "demo", "query": "x"},
            headers={"Idempotency-Key": "req-1"},
        )
        assert again.status_code == 200 and again.json()["id"] == task["id"]
        done = await wait_status(client, task["id"], "DONE")
        assert done["output"]["upper"] == "OVER HTTP"
        events = (await client.get(f"/v1/tasks/{task['id']}/events", params={"after": 1})).json()
        assert [e["seq"] for e in events["items"]] == [2, 3]
        assert events["next_after"] == 3
        feedback = await client.post(
            f"/v1/tasks/{task['id']}/feedback", json={"feedback": "shorter please"}
        )
        assert feedback.json()["feedback"] == "shorter please"
        refused = await client.post(f"/v1/tasks/{task['id']}/cancel")
        assert refused.status_code == 409 and error_code(refused) == "invalid_state"


async def test_list_filters_and_paginates(api: Api) -> None:
    async with api.client() as client:
        ids = []
        for i in range(5):
            r = await client.post(
                "/v1/tasks",
                json={"agent_orch": "demo", "query": f"q{i}", "run_at": "2999-01-01T00:00:00Z"},
            )
            ids.append(r.json()["id"])
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, "status": "PENDING", "agent_orch": "demo"}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/tasks", params=params)).json()
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == list(reversed(ids))
        bad = await client.get("/v1/tasks", params={"status": "SLEEPING"})
        assert bad.status_code == 422 and error_code(bad) == "invalid_input"


async def test_human_input_and_cancel_and_requeue_over_http(api: Api) -> None:
    async with api.client() as client:
        task = (
            await client.post(
                "/v1/tasks",
                json={"agent_orch": "streaming", "query": "q", "input": {"ask": "Which one?"}},
            )
        ).json()
        await wait_status(client, task["id"], "INPUT_REQUIRED")
        answered = await client.post(f"/v1/tasks/{task['id']}/input", json={"answer": "the red"})
        assert answered.status_code == 200 and answered.json()["status"] == "PENDING"
        done = await wait_status(client, task["id"], "DONE")
        assert done["output"]["human"] == "the red"

        slow = (
            await client.post(
                "/v1/tasks",
                json={"agent_orch": "demo", "query": "slow", "input": {"steps": 100, "delay": 0.1}},
            )
        ).json()
        await wait_status(client, slow["id"], "IN_PROGRESS")
        cancelled = await client.post(
            f"/v1/tasks/{slow['id']}/cancel", json={"reason": "changed my mind"}
        )
        assert cancelled.json()["status"] == "CANCELLED"
        requeued = await client.post(f"/v1/tasks/{slow['id']}/requeue")
        assert requeued.json()["status"] == "PENDING" and requeued.json()["attempts"] == 0


async def _chunks(body: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_bad_input_gets_a_4xx_with_a_stable_code_and_writes_nothing(
    api: Api, db: Database
) -> None:
    async with api.client() as client:
        cases = [
            (
                dict(content=b"{not json", headers={"content-type": "application/json"}),
                400,
                "malformed_json",
            ),
            (dict(json={"agent_orch": "nobody"}), 422, "unknown_agent"),
            (dict(json={"agent_orch": "demo", "query": 5}), 422, "invalid_input"),
            (dict(json={"agent_orch": "demo", "priority": "high"}), 422, "invalid_input"),
            (dict(json={"agent_orch": "demo", "surprise": 1}), 422, "invalid_input"),
            (dict(json={"agent_orch": "demo", "query": "x" * 100_001}), 422, "invalid_input"),
            (
                dict(json={"agent_orch": "demo", "input": {"x": "y" * 2_100_000}}),
                413,
                "payload_too_large",
            ),
            (dict(json=[1, 2]), 422, "invalid_input"),
            (  # not UTF-8
                dict(
                    content=b'{"agent_orch": "demo", "query": "\xff\xfe"}',
                    headers={"content-type": "application/json"},
                ),
                400,
                "malformed_json",
            ),
            (  # nested deeper than any decoder goes
                dict(
                    content=b'{"agent_orch": "demo", "input": {"a": '
                    + b"[" * 100_000
                    + b"]" * 100_000
                    + b"}}",
                    headers={"content-type": "application/json"},
                ),
                400,
                "malformed_json",
            ),
            (dict(json={"agent_orch": "demo", "query": "a\x00b"}), 422, "invalid_input"),
            (dict(json={"agent_orch": "demo", "activity_id": "\x00"}), 422, "invalid_input"),
            (  # valid JSON, but a lone surrogate is not Unicode text Postgres can hold
                dict(
                    content=b'{"agent_orch": "demo", "query": "a\\udcff"}',
                    headers={"content-type": "application/json"},
                ),
                422,
                "invalid_input",
            ),
            (
                dict(
                    content=b'{"agent_orch": "demo", "input": {"k": "\\ud800"}}',
                    headers={"content-type": "application/json"},
                ),
                422,
                "invalid_input",
            ),
            (  # sent chunked: no Content-Length to refuse it by
                dict(
                    content=_chunks(
                        b'{"agent_orch": "demo", "query": "' + b"x" * 2_100_000 + b'"}'
                    ),
                    headers={"content-type": "application/json"},
                ),
                413,
                "payload_too_large",
            ),
        ]
        for kwargs, status, code in cases:
            response = await client.post("/v1/tasks", **kwargs)  # type: ignore[arg-type]
            assert response.status_code == status, (kwargs.get("json"), response.text[:300])
            assert error_code(response) == code
        missing = await client.get("/v1/tasks/00000000-0000-0000-0000-000000000000")
        assert missing.status_code == 404 and error_code(missing) == "task_not_found"
        not_uuid = await client.get("/v1/tasks/abc")
        assert not_uuid.status_code == 422
        unknown = await client.post("/v1/tasks", json={"agent_orch": "nobody"})
        listed = unknown.json()["error"]["message"].partition("; agents: ")[2].split(", ")
        assert {"demo", "streaming"} <= set(listed)  # it says which agents there are
        unknown_route = await client.get("/v1/nothing-here")
        assert unknown_route.status_code == 404 and error_code(unknown_route) == "not_found"
    assert await db.fetchval("SELECT count(*) FROM todolist") == 0


async def test_backpressure_answers_429_and_writes_nothing(api: Api, db: Database) -> None:
    await db.execute("UPDATE tenants SET max_pending_tasks = 3 WHERE id = 'acme'")
    async with api.client() as client:
        later = {"agent_orch": "demo", "run_at": "2999-01-01T00:00:00Z"}
        first = await client.post("/v1/tasks", json=later, headers={"Idempotency-Key": "k"})
        for _ in range(2):
            assert (await client.post("/v1/tasks", json=later)).status_code == 201
        refused = await client.post("/v1/tasks", json=later)
        assert refused.status_code == 429 and error_code(refused) == "too_many_pending"
        assert int(refused.headers["retry-after"]) > 0
        # a retry of a create that already succeeded is answered, not refused
        retried = await client.post("/v1/tasks", json=later, headers={"Idempotency-Key": "k"})
        assert retried.status_code == 200 and retried.json()["id"] == first.json()["id"]
    assert await db.fetchval("SELECT count(*) FROM todolist WHERE tenant_id = 'acme'") == 3
    async with api.client(api.key_b) as other:  # another tenant is not affected
        assert (await other.post("/v1/tasks", json={"agent_orch": "demo"})).status_code == 201


async def test_tenants_are_isolated(api: Api) -> None:
    async with api.client(api.key_a) as a, api.client(api.key_b) as b:
        task = (
            await a.post(
                "/v1/tasks",
                json={"agent_orch": "streaming", "query": "mine", "input": {"ask": "?"}},
            )
        ).json()
        await wait_status(a, task["id"], "INPUT_REQUIRED")
        tid = task["id"]
        for method, path, body in [
            ("GET", f"/v1/tasks/{tid}", None),
            ("GET", f"/v1/tasks/{tid}/events", None),
            ("GET", f"/v1/tasks/{tid}/stream", None),
            ("POST", f"/v1/tasks/{tid}/cancel", None),
            ("POST", f"/v1/tasks/{tid}/input", {"answer": "x"}),
            ("POST", f"/v1/tasks/{tid}/requeue", None),
            ("POST", f"/v1/tasks/{tid}/feedback", {"feedback": "x"}),
        ]:
            response = await b.request(method, path, json=body)
            assert response.status_code == 404, (path, response.status_code, response.text)
        assert tid not in [t["id"] for t in (await b.get("/v1/tasks")).json()["items"]]
        assert (await a.get(f"/v1/tasks/{tid}")).json()["status"] == "INPUT_REQUIRED"


async def test_processes_start_with_their_first_task(api: Api) -> None:
    async with api.client() as client:
        started = await client.post(
            "/v1/processes",
            json={
                "name": "Leave request",
                "variables": {"days": 3},
                "task": {
                    "agent_orch": "demo",
                    "query": "approve 3 days",
                    "input": {"steps": 1, "delay": 0},
                },
            },
        )
        assert started.status_code == 201, started.text
        view = started.json()
        proc_id = view["process"]["proc_inst_id"]
        assert view["process"]["status"] == "RUNNING"
        assert view["tasks"][0]["proc_inst_id"] == proc_id
        await wait_status(client, view["tasks"][0]["id"], "DONE")
        fetched = (await client.get(f"/v1/processes/{proc_id}")).json()
        assert fetched["process"]["variables_data"] == {"days": 3}
        assert [t["status"] for t in fetched["tasks"]] == ["DONE"]
        bad = await client.post(
            "/v1/processes", json={"proc_def_id": "missing", "task": {"agent_orch": "demo"}}
        )
        assert bad.status_code == 422 and error_code(bad) == "invalid_input"
    async with api.client(api.key_b) as other:
        assert (await other.get(f"/v1/processes/{proc_id}")).status_code == 404


async def test_the_console_is_served(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anon:
        root = await anon.get("/", follow_redirects=False)
        assert root.status_code == 307 and root.headers["location"] == "/console"
        page = await anon.get("/console")
        assert page.status_code == 200 and "<title>processgpt console</title>" in page.text
        assert '<script type="module" src="/console/assets/app.js">' in page.text
        script = await anon.get("/console/assets/api.js")
        assert "Authorization" in script.text  # it drives the same authenticated API

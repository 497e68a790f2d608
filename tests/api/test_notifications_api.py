"""``/v1/notifications`` against a real API process and a real worker process: a task that
needs input notifies its user, the list filters and read marks, the live stream (resumed
with ``Last-Event-ID``, nothing repeated or missed), and tenant isolation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.api.conftest import start_api
from tests.api.test_tasks_api import error_code
from tests.support import StartProcess, start_worker_process, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
async def api(db: Database, start_process: StartProcess) -> AsyncIterator[tuple[str, str, str]]:
    keys = ApiKeyRepository(db)
    key_a = (await keys.create("acme", role=Role.MEMBER)).key
    key_b = (await keys.create("globex", role=Role.MEMBER)).key
    _server, url = await start_api(start_process)
    await start_worker_process(start_process, agent="demo")
    yield url, key_a, key_b


def client(url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


async def ask(c: httpx.AsyncClient, user: str) -> str:
    body = {"agent_orch": "demo", "query": "q", "user_id": user,
            "input": {"steps": 0, "ask": f"{user}, which one?"}}  # fmt: skip
    made = await c.post("/v1/tasks", json=body)
    assert made.status_code in (200, 201), made.text
    return str(made.json()["id"])


async def read_frames(response: httpx.Response, frames: list[dict[str, Any]]) -> None:
    """Collect the stream's notification frames (id and data) until cancelled."""
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            event["id"] = line[4:]
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif line == "" and "data" in event:
            frames.append(event)
            event = {}
        elif line == "":
            event = {}


async def test_input_required_notifies_the_user_live_and_in_the_list(
    api: tuple[str, str, str],
) -> None:
    url, key_a, key_b = api
    async with client(url, key_a) as acme, client(url, key_b) as globex:
        frames: list[dict[str, Any]] = []
        async with acme.stream("GET", "/v1/notifications/stream?user=alice") as live:
            assert live.status_code == 200
            assert live.headers["content-type"].startswith("text/event-stream")
            reader = asyncio.create_task(read_frames(live, frames))
            first = await ask(acme, "alice")
            await ask(acme, "bob")  # not alice's
            await ask(globex, "alice")  # another tenant's alice
            await wait_until(lambda: len(frames) >= 1, timeout=30)
            await asyncio.sleep(0.5)  # nothing else arrives for alice of acme
            reader.cancel()
        assert len(frames) == 1, frames
        note = frames[0]["data"]
        assert note["type"] == "INPUT_REQUIRED" and note["todo_id"] == first
        assert note["user_id"] == "alice" and note["read"] is False
        assert note["data"]["task_id"] == first and note["data"]["status"] == "INPUT_REQUIRED"

        # Resumed after that frame: the next one only (bob's, with no user filter).
        resumed: list[dict[str, Any]] = []
        async with acme.stream(
            "GET", "/v1/notifications/stream", headers={"Last-Event-ID": frames[0]["id"]}
        ) as again:
            reader = asyncio.create_task(read_frames(again, resumed))
            await wait_until(lambda: len(resumed) >= 1, timeout=30)
            await asyncio.sleep(0.3)
            reader.cancel()
        assert [f["data"]["user_id"] for f in resumed] == ["bob"]
        assert resumed[0]["id"] > frames[0]["id"] or len(resumed[0]["id"]) >= 3

        listed = (await acme.get("/v1/notifications", params={"user": "alice"})).json()
        assert [n["todo_id"] for n in listed["items"]] == [first]
        assert len((await acme.get("/v1/notifications")).json()["items"]) == 2
        assert len((await globex.get("/v1/notifications")).json()["items"]) == 1

        nid = listed["items"][0]["id"]
        theirs = await globex.post(f"/v1/notifications/{nid}/read")
        assert theirs.status_code == 404 and error_code(theirs) == "notification_not_found"
        marked = await acme.post(f"/v1/notifications/{nid}/read")
        assert marked.status_code == 200 and marked.json()["read"] is True
        unread = (await acme.get("/v1/notifications", params={"unread": "true"})).json()
        assert [n["user_id"] for n in unread["items"]] == ["bob"]
        assert (await acme.post("/v1/notifications/read")).json() == {"marked": 1}
        assert (await globex.post("/v1/notifications/read")).json() == {"marked": 1}

        bad = await acme.get("/v1/notifications/stream", headers={"Last-Event-ID": "nope"})
        assert bad.status_code == 422 and error_code(bad) == "invalid_input"
        bad = await acme.get("/v1/notifications", params={"cursor": "x"})
        assert bad.status_code == 422
        async with httpx.AsyncClient(base_url=url) as anonymous:
            anon = await anonymous.get("/v1/notifications")
        assert anon.status_code == 401

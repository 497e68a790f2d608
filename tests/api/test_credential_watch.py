"""Streams end when their credential does: a revoked API key ends its SSE streams and
WebSocket chats at once (other keys' streams go on), a JWT ends its stream at ``exp``;
against real API and worker processes."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import jwt
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from tests.api.conftest import Api
from tests.support import StartProcess, start_worker_process

SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
LONG_TASK = {"agent_orch": "demo", "query": "long", "input": {"steps": 100, "delay": 0.1}}


async def _follow(client: httpx.AsyncClient, task_id: str, seen: list[float]) -> str:
    """Read a task's stream until it ends; note the time of every chunk."""
    received = ""
    async with client.stream("GET", f"/v1/tasks/{task_id}/stream") as response:
        assert response.status_code == 200
        async for chunk in response.aiter_text():
            received += chunk
            seen.append(time.monotonic())
    return received


async def test_revoking_a_key_ends_its_streams_and_only_those(api: Api, db: Database) -> None:
    keys = ApiKeyRepository(db)
    leaked = await keys.create("acme")
    async with api.client(leaked.key) as client:
        task = (await client.post("/v1/tasks", json=LONG_TASK)).json()
    # The routes read the first of repeated headers: the second must not hide the key.
    repeated = [("Authorization", f"Bearer {leaked.key}"), ("Authorization", "Bearer x")]
    async with (
        httpx.AsyncClient(base_url=api.url, headers=repeated, timeout=30) as doomed,
        api.client(api.key_a) as kept,
    ):
        doomed_seen: list[float] = []
        kept_seen: list[float] = []
        doomed_stream = asyncio.create_task(_follow(doomed, task["id"], doomed_seen))
        kept_stream = asyncio.create_task(_follow(kept, task["id"], kept_seen))
        while not (doomed_seen and kept_seen):  # both streams are open
            await asyncio.sleep(0.05)
        assert await keys.revoke("acme", leaked.prefix)
        revoked_at = time.monotonic()
        received = await asyncio.wait_for(doomed_stream, 2)
        assert time.monotonic() - revoked_at < 1.0
        assert "[DONE]" not in received  # cut off, not finished
        await asyncio.sleep(1.0)
        assert not kept_stream.done() and kept_seen[-1] > revoked_at + 0.5  # still streaming
        kept_stream.cancel()
        await asyncio.gather(kept_stream, return_exceptions=True)
        again = await doomed.get(f"/v1/tasks/{task['id']}/stream")
        assert again.status_code == 401 and again.json()["error"]["code"] == "unauthorized"


async def test_revoking_a_key_closes_its_chat_sockets(
    api: Api, db: Database, start_process: StartProcess
) -> None:
    await start_worker_process(
        start_process, "--executor", "tests.agents.executors:ChatEchoExecutor", agent="echo"
    )
    keys = ApiKeyRepository(db)
    leaked = await keys.create("acme")
    base = api.url.replace("http://", "ws://")
    async with (
        connect(f"{base}/v1/agent_ws/revoked/?agent=echo&api_key={leaked.key}") as doomed,
        connect(f"{base}/v1/agent_ws/kept/?agent=echo&api_key={api.key_a}") as kept,
    ):
        await asyncio.wait_for(doomed.recv(), 10)  # the status message: connected
        await asyncio.wait_for(kept.recv(), 10)
        assert await keys.revoke("acme", leaked.prefix)
        started = time.monotonic()
        try:
            while True:
                await asyncio.wait_for(doomed.recv(), 2)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1008
        assert time.monotonic() - started < 1.0
        await kept.ping()  # the other key's chat is still connected


async def test_a_stream_ends_when_its_token_expires(
    db: Database, start_process: StartProcess
) -> None:
    await db.execute("INSERT INTO tenants (id) VALUES ('acme')")
    server = start_process("api", env={"PROCESSGPT_API_PORT": "0", "PROCESSGPT_JWT_SECRET": SECRET})
    await server.wait_for_log("api listening url=")
    match = re.search(r"api listening url=(\S+)", server.log())
    assert match is not None
    await start_worker_process(start_process, agent="demo")
    expires = int(time.time()) + 3
    claims: dict[str, Any] = {"tenant_id": "acme", "exp": expires}
    headers = {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}
    async with httpx.AsyncClient(base_url=match[1], headers=headers, timeout=30) as client:
        task = (await client.post("/v1/tasks", json=LONG_TASK)).json()
        seen: list[float] = []
        received = await asyncio.wait_for(_follow(client, task["id"], seen), 10)
    ended = time.time()
    assert expires <= ended < expires + 1.5
    assert "[DONE]" not in received

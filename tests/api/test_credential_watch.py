"""Streams end when their credential does: a revoked API key ends its SSE streams and
WebSocket chats at once (other keys' streams go on), a JWT ends its stream at ``exp``;
against real API and worker processes."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.protocols.sse import SSEDecoder
from tests.api.conftest import Api
from tests.support import StartProcess, start_worker_process, wait_until

SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
# About 60 s: every check below is over long before the task ends by itself.
LONG_TASK = {"agent_orch": "demo", "query": "long", "input": {"steps": 600, "delay": 0.1}}
PROMPTLY = 10.0
"""A generous bound for "at once" on a loaded machine: far below the task's own end."""


class Follower:
    """Reads a task's stream in the background, noting the highest event seq delivered."""

    def __init__(self, client: httpx.AsyncClient, task_id: str) -> None:
        self.raw = ""
        self.last_seq = 0
        self.task = asyncio.create_task(self._read(client, task_id))

    async def _read(self, client: httpx.AsyncClient, task_id: str) -> str:
        decoder = SSEDecoder()
        async with client.stream("GET", f"/v1/tasks/{task_id}/stream") as response:
            assert response.status_code == 200
            async for chunk in response.aiter_text():
                self.raw += chunk
                for frame in decoder.feed(chunk):
                    if frame.id is not None:
                        self.last_seq = int(frame.id)
        return self.raw

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _follow(client: httpx.AsyncClient, task_id: str) -> str:
    """Read a task's stream until it ends."""
    follower = Follower(client, task_id)
    return await follower.task


async def test_revoking_a_key_ends_its_streams_and_only_those(api: Api, db: Database) -> None:
    keys = ApiKeyRepository(db)
    leaked = await keys.create("acme")
    async with api.client(leaked.key) as client:
        task = (await client.post("/v1/tasks", json=LONG_TASK)).json()
    # The routes read the first of repeated headers: the second must not hide the key.
    repeated = [("Authorization", f"Bearer {leaked.key}"), ("Authorization", "Bearer x")]
    async with (
        httpx.AsyncClient(base_url=api.url, headers=repeated, timeout=30) as doomed_client,
        api.client(api.key_a) as kept_client,
    ):
        doomed = Follower(doomed_client, task["id"])
        kept = Follower(kept_client, task["id"])
        try:
            await wait_until(lambda: doomed.last_seq > 0 and kept.last_seq > 0)  # both open
            assert await keys.revoke("acme", leaked.prefix)
            received = await asyncio.wait_for(doomed.task, PROMPTLY)
            assert "[DONE]" not in received  # cut off, not finished: the task still runs
            now = (await kept_client.get(f"/v1/tasks/{task['id']}")).json()
            assert now["status"] == "IN_PROGRESS", now
            # The other key's stream goes on: it delivers events written after the cut.
            await wait_until(lambda: kept.last_seq > now["last_seq"], timeout=PROMPTLY)
            assert not kept.task.done()
        finally:
            await doomed.stop()
            await kept.stop()
        again = await doomed_client.get(f"/v1/tasks/{task['id']}/stream")
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
        # An idle chat socket stays open for ever unless its credential ends it.
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(PROMPTLY):
                while True:
                    await doomed.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        pong = await kept.ping()  # the other key's chat is still connected
        await asyncio.wait_for(pong, PROMPTLY)


async def test_a_stream_ends_when_its_token_expires(
    db: Database, start_process: StartProcess
) -> None:
    await db.execute("INSERT INTO tenants (id) VALUES ('acme')")
    server = start_process("api", env={"PROCESSGPT_API_PORT": "0", "PROCESSGPT_JWT_SECRET": SECRET})
    await server.wait_for_log("api listening url=")
    match = re.search(r"api listening url=(\S+)", server.log())
    assert match is not None
    await start_worker_process(start_process, agent="demo")
    expires = int(time.time()) + 6  # time enough to create the task and open its stream
    claims: dict[str, Any] = {"tenant_id": "acme", "exp": expires}
    headers = {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}
    async with httpx.AsyncClient(base_url=match[1], headers=headers, timeout=30) as client:
        task = (await client.post("/v1/tasks", json=LONG_TASK)).json()
        received = await asyncio.wait_for(_follow(client, task["id"]), 30)
    ended = time.time()  # the server's clock too: it runs on this machine
    assert expires <= ended < expires + PROMPTLY  # at exp, not at the task's end (~60 s on)
    assert "[DONE]" not in received
    row = await db.fetchrow("SELECT status FROM todolist WHERE id = $1", uuid.UUID(task["id"]))
    assert row is not None and row["status"] == "IN_PROGRESS"  # cut off, not finished

"""The ``delegate`` tool calling a remote A2A agent: our own ``/a2a/demo/`` in a real API
process, through a2a-sdk's client. Only the model is a stand-in."""

from __future__ import annotations

import asyncio
import json

import httpx

from processgpt.agents.delegate import Delegator
from processgpt.agents.llm import LlmExecutor
from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import TaskStatus
from tests.agents.test_delegate import llm, submit, tool_events, wait_status
from tests.api.conftest import Api
from tests.conftest import StartWorker
from tests.fake_llm import FakeLLM, Turn


async def test_delegate_to_a_remote_a2a_agent(
    db: Database,
    fake_llm: FakeLLM,
    api: Api,
    start_worker: StartWorker,
    executors: list[LlmExecutor],
) -> None:
    url = f"{api.url}/a2a/demo/"
    fake_llm.add(
        Turn(
            tool_calls=[
                ("delegate", {"url": url, "message": "far away"}),
                ("delegate", {"url": "http://example.invalid/a2a/x/", "message": "no"}),
            ]
        ),
        Turn(text="done"),
    )
    delegator = Delegator(remote_prefixes=(api.url,), remote_token=api.key_a, timeout=30)
    await start_worker({"llm": llm(fake_llm, delegator, executors)})
    repo = TaskRepository(db)
    task_id = await submit(repo, "ask far")
    task = await wait_status(repo, task_id, TaskStatus.DONE, TaskStatus.FAILED)
    assert task.status is TaskStatus.DONE, task.error
    allowed, refused = fake_llm.requests[1].messages[-2:]
    assert json.loads(allowed["content"])["upper"] == "FAR AWAY"
    assert "not allowed" in refused["content"]
    log = await tool_events(db, task_id)
    assert [k for k, _ in log].count("tool_usage_finished") == 2


class _CardServer:
    """Serves ``card`` (JSON) for every request on 127.0.0.1 and counts the requests."""

    def __init__(self, card: bytes = b"{}") -> None:
        self.card = card
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> _CardServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b""
        while (line := await reader.readline()) not in (b"\r\n", b""):
            head += line
        self.requests.append(head)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(self.card)}\r\nconnection: close\r\n\r\n".encode()
            + self.card
        )
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()


async def test_a_card_pointing_elsewhere_gets_neither_the_message_nor_the_token(
    api: Api,
) -> None:
    """The listed agent's card names another URL: the client would follow it with the bearer
    token; every request of the call is checked against PROCESSGPT_DELEGATE_URLS."""
    elsewhere = await _CardServer().start()
    async with httpx.AsyncClient() as http:
        card = (await http.get(f"{api.url}/a2a/demo/.well-known/agent-card.json")).text
    assert api.url in card
    listed = await _CardServer(card.replace(api.url, elsewhere.url).encode()).start()
    try:
        delegator = Delegator(
            remote_prefixes=(listed.url,), remote_token="planted-delegate-token", timeout=10
        )
        outcome = await delegator.call(
            {}, "call-1", {"url": f"{listed.url}/a2a/demo/", "message": "hi"}
        )
        assert outcome.error is not None and "card points outside" in outcome.error
        assert len(listed.requests) >= 1  # the card was read, with the token
        assert elsewhere.requests == []  # nothing went elsewhere
    finally:
        await listed.stop()
        await elsewhere.stop()

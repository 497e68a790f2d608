"""The WebSocket chat (seed 002 protocol) against real API and worker processes, driven by the
``AgentApi`` client and, where the client would hide what the server does, by raw sockets."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from processgpt.client.agent_api import AgentApi, AgentBusyException, AgentException
from processgpt.db.database import Database
from processgpt.protocols.ws_chat import (
    AgentEventUnion,
    MsgError,
    MsgEventCustomUpdate,
    MsgEventEnd,
    MsgEventSendFile,
    MsgEventTextChunk,
    MsgEventToolCallChunk,
    MsgEventToolResult,
    MsgGracefulDisconnect,
    MsgStatus,
    ServerMessage,
    ServerMessageUnion,
)
from tests.api.conftest import Api
from tests.support import StartProcess, start_worker_process, wait_until

ECHO = "tests.agents.executors:ChatEchoExecutor"


@pytest.fixture
async def echo(start_process: StartProcess) -> None:
    """A worker serving the ``echo`` chat agent (tests.agents.executors.ChatEchoExecutor)."""
    await start_worker_process(start_process, "--executor", ECHO, agent="echo")


def ws_url(api: Api, chat_id: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return (
        api.url.replace("http://", "ws://")
        + f"/v1/agent_ws/{chat_id}/"
        + (f"?{query}" if query else "")
    )


async def collect(events: AsyncIterator[AgentEventUnion]) -> list[AgentEventUnion]:
    return [event async for event in events]


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, MsgEventTextChunk))


async def recv(ws: Any, timeout: float = 10) -> ServerMessageUnion:
    return ServerMessage.validate_json(await asyncio.wait_for(ws.recv(), timeout))


async def _connects(client: AgentApi) -> bool:
    try:
        await client.connect()
    except AgentBusyException:
        return False
    return True


async def reconnect(client: AgentApi) -> None:
    """Connect a client to a chat another connection just left: the server releases the chat
    when it notices the close, a moment after the client's close returns."""
    await wait_until(lambda: _connects(client), timeout=10)


async def tasks_of(db: Database, tenant: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM todolist WHERE tenant_id = $1", tenant))


async def test_a_full_turn(api: Api, db: Database) -> None:
    async with connect(ws_url(api, "turn-1", agent="streaming", api_key=api.key_a)) as ws:
        assert isinstance(await recv(ws), MsgStatus)  # the first message, before any request
    client = AgentApi("streaming", api.url, chat_id="turn-1", api_key=api.key_a)
    await reconnect(client)
    try:
        events = await collect(client.send_message("weather"))
    finally:
        await client.close()
    kinds = [type(e).__name__ for e in events]
    assert isinstance(events[-1], MsgEventEnd) and events[-1].tokens_used == 42
    call = kinds.index("MsgEventToolCallChunk")
    assert text_of(events[:call]) == "Let me look that up."  # text chunks in order, then the call
    tool_call = events[call]
    assert isinstance(tool_call, MsgEventToolCallChunk) and tool_call.tool_name == "search"
    assert json.loads(tool_call.args_chunk or "") == {"q": "weather"}
    result = next(e for e in events if isinstance(e, MsgEventToolResult))
    assert result.tool_name == "search" and result.result == {"hits": 3}
    assert kinds.index("MsgEventToolResult") > call
    updates = [e.payload for e in events if isinstance(e, MsgEventCustomUpdate)]
    assert {"event_type": "progress", "data": {"status": "summarising", "pct": 50}} in updates
    assert updates[-1]["event_type"] == "result"
    assert updates[-1]["data"] == {"answer": "3 results", "human": None}
    assert text_of(events) == "Let me look that up.Found 3 results."
    assert all(e.source == "main" for e in events if isinstance(e, MsgEventTextChunk))
    row = await db.fetchrow("SELECT agent_orch, status FROM todolist WHERE tenant_id = 'acme'")
    assert row is not None and (row["agent_orch"], row["status"]) == ("streaming", "DONE")


async def test_a_taken_chat_refuses_a_second_client_in_any_api_process(
    api: Api, start_process: StartProcess
) -> None:
    other = start_process("api", env={"PROCESSGPT_API_PORT": "0"})
    await other.wait_for_log("api listening url=")
    match = re.search(r"api listening url=(\S+)", other.log())
    assert match is not None
    first = AgentApi("demo", api.url, chat_id="busy", api_key=api.key_a)
    await first.connect()
    try:
        for url in (api.url, match[1]):  # this process, and another one on the same database
            second = AgentApi("demo", url, chat_id="busy", api_key=api.key_a)
            with pytest.raises(AgentBusyException):
                await second.connect()
        with pytest.raises(InvalidStatus) as refused:  # what other clients see: HTTP 403
            async with connect(ws_url(api, "busy", api_key=api.key_a)):
                pass
        assert refused.value.response.status_code == 403
    finally:
        await first.close()
    again = AgentApi("demo", match[1], chat_id="busy", api_key=api.key_a)
    await reconnect(again)  # free once the first one left
    events = await collect(again.send_message("hi"))
    assert isinstance(events[-1], MsgEventEnd)
    await again.close()


async def test_a_message_while_streaming_is_refused_without_a_second_task(
    api: Api, db: Database, echo: None
) -> None:
    async with connect(ws_url(api, "busy-turn", agent="echo", api_key=api.key_a)) as ws:
        assert isinstance(await recv(ws), MsgStatus)
        await ws.send(json.dumps({"type": "USER_MESSAGE", "text": "a slow one", "attachments": []}))
        first = await recv(ws)
        assert isinstance(first, MsgEventTextChunk | MsgEventCustomUpdate)
        await ws.send(json.dumps({"type": "USER_MESSAGE", "text": "another"}))
        seen: list[ServerMessageUnion] = [first]
        while not isinstance(seen[-1], MsgEventEnd):
            seen.append(await recv(ws))
        errors = [m for m in seen if isinstance(m, MsgError)]
        assert [e.code for e in errors] == ["chat_busy"]
        assert text_of(seen).strip() == "echo: a slow one"
    assert await tasks_of(db, "acme") == 1


async def test_the_client_refuses_a_second_request_itself(api: Api, echo: None) -> None:
    client = AgentApi("echo", api.url, chat_id="local-busy", api_key=api.key_a)
    await client.connect()
    try:
        reply = client.send_message("slow please")
        first = await anext(reply)
        assert isinstance(first, MsgEventTextChunk | MsgEventCustomUpdate)
        with pytest.raises(AgentBusyException):
            await anext(client.send_message("again"))
        rest = await collect(reply)
        assert isinstance(rest[-1], MsgEventEnd)
    finally:
        await client.close()


async def test_a_reply_survives_a_disconnect_and_is_shown_on_reconnect(
    api: Api, db: Database, echo: None
) -> None:
    client = AgentApi("echo", api.url, chat_id="survive", api_key=api.key_a)
    await client.connect()
    seen: list[AgentEventUnion] = []
    async for event in client.send_message("slow words keep coming for a while"):
        seen.append(event)
        if len([e for e in seen if isinstance(e, MsgEventTextChunk)]) == 2:
            break
    await client.close()  # mid-reply
    task_id = await db.fetchval("SELECT id FROM todolist WHERE tenant_id = 'acme'")

    async def done() -> bool:
        status = await db.fetchval("SELECT status FROM todolist WHERE id = $1", task_id)
        return bool(status == "DONE")

    await wait_until(done, timeout=20)  # the task went on without the client
    replayed: list[ServerMessageUnion] = []
    again = AgentApi(
        "echo", api.url, chat_id="survive", api_key=api.key_a, callback=replayed.append
    )
    await reconnect(again)
    await wait_until(lambda: any(isinstance(m, MsgEventEnd) for m in replayed), timeout=10)
    full = text_of(replayed)
    assert full.strip() == "echo: slow words keep coming for a while"
    assert full.startswith(text_of(seen))  # the turn is replayed from its start
    await again.close()
    # The end was delivered: a later connection is not shown the turn again. A replay would
    # come first, so once a new turn's reply has come in, nothing of the old one came.
    quiet: list[ServerMessageUnion] = []
    third = AgentApi("echo", api.url, chat_id="survive", api_key=api.key_a, callback=quiet.append)
    await reconnect(third)
    try:
        reply = await collect(third.send_message("and now"))
    finally:
        await third.close()
    assert quiet == []
    assert text_of(reply).strip() == "echo: and now"


async def test_turns_share_the_chat_history(api: Api, db: Database, echo: None) -> None:
    client = AgentApi("echo", api.url, chat_id="history", api_key=api.key_a)
    await client.connect()
    try:
        first = await collect(client.send_message("first question", ["notes/a.txt"]))
        files = [e.path for e in first if isinstance(e, MsgEventSendFile)]
        assert files == ["notes/a.txt"]
        assert first[-1] == MsgEventEnd(tokens_used=7)
        second = await collect(client.send_message("second question"))
    finally:
        await client.close()
    seen_history = next(e for e in second if isinstance(e, MsgEventToolResult)).result
    assert seen_history == [
        {"role": "user", "text": "first question"},
        {"role": "assistant", "text": "echo: first question "},
    ]
    rows = await db.fetch("SELECT input FROM todolist WHERE tenant_id = 'acme' ORDER BY created_at")
    assert rows[0]["input"] == {"attachments": ["notes/a.txt"], "chat_id": "history", "history": []}
    assert rows[1]["input"]["history"] == seen_history


async def test_a_chat_can_talk_to_an_agent_profile(api: Api, db: Database, echo: None) -> None:
    async with api.client() as http:
        profile = {"name": "echo-helper", "agent_orch": "echo", "instructions": "be brief"}
        created = await http.post("/v1/agents", json=profile)
        assert created.status_code == 201, created.text
    client = AgentApi("echo-helper", api.url, chat_id="with-profile", api_key=api.key_a)
    await client.connect()
    try:
        events = await collect(client.send_message("hello"))
    finally:
        await client.close()
    assert text_of(events) == "echo: hello "
    row = await db.fetchrow("SELECT agent_orch, agent_profile, status FROM todolist")
    assert row is not None and dict(row) == {
        "agent_orch": "echo",
        "agent_profile": "echo-helper",
        "status": "DONE",
    }
    # another tenant has no such profile
    async with connect(ws_url(api, "theirs", agent="echo-helper", api_key=api.key_b)) as ws:
        error = await recv(ws)
        assert isinstance(error, MsgError) and error.code == "unknown_agent"


async def test_a_question_ends_the_turn_and_the_next_message_answers_it(
    api: Api, db: Database, echo: None
) -> None:
    client = AgentApi("echo", api.url, chat_id="asking", api_key=api.key_a)
    await client.connect()
    try:
        asked = await collect(client.send_message("ask: which colour?"))
        question = [e.payload for e in asked if isinstance(e, MsgEventCustomUpdate)]
        assert {"event_type": "human_asked", "data": {"text": "which colour?", "type": "text"}} in (
            question
        )
        assert isinstance(asked[-1], MsgEventEnd)
        answered = await collect(client.send_message("blue"))
        result = [e.payload for e in answered if isinstance(e, MsgEventCustomUpdate)][-1]
        assert result["event_type"] == "result" and result["data"]["answer"] == "blue"
        assert "human_asked" not in [
            e.payload["event_type"] for e in answered if isinstance(e, MsgEventCustomUpdate)
        ]  # the answer's turn shows only what came after the answer
        third = await collect(client.send_message("and now?"))
        tool = next(e for e in third if isinstance(e, MsgEventToolResult))
        assert tool.result[:2] == [
            {"role": "user", "text": "ask: which colour?"},
            {"role": "assistant", "text": "which colour?"},
        ]
        assert tool.result[2]["text"] == "blue"
    finally:
        await client.close()
    assert await tasks_of(db, "acme") == 2  # the answer continued the first task


async def test_a_failed_task_ends_the_turn_with_an_error(api: Api, echo: None) -> None:
    client = AgentApi("echo", api.url, chat_id="fails", api_key=api.key_a)
    await client.connect()
    try:
        seen: list[AgentEventUnion] = []
        with pytest.raises(AgentException) as failed:
            async for event in client.send_message("fail: the printer is on fire"):
                seen.append(event)
        assert failed.value.code == "agent_failed"
        assert failed.value.details == "the printer is on fire"
        assert text_of(seen) == "trying "
        assert isinstance(seen[-1], MsgEventEnd)  # the turn ended before the error was raised
        again = await collect(client.send_message("still there?"))  # the chat goes on
        assert text_of(again).strip() == "echo: still there?"
    finally:
        await client.close()
    unknown = AgentApi("nobody", api.url, chat_id="fails-2", api_key=api.key_a)
    with pytest.raises(AgentException) as refused:
        await unknown.connect()
    assert refused.value.code == "unknown_agent"


async def test_chats_are_tenant_scoped(api: Api, db: Database, echo: None) -> None:
    a = AgentApi("echo", api.url, chat_id="shared", api_key=api.key_a)
    b = AgentApi("echo", api.url, chat_id="shared", api_key=api.key_b)
    await a.connect()
    await b.connect()  # the same chat id of another tenant is another chat: not busy
    try:
        await collect(a.send_message("secret of acme"))
        reply = await collect(b.send_message("hello"))
        history = next(e for e in reply if isinstance(e, MsgEventToolResult)).result
        assert history == []  # globex's chat has no turns of acme's
    finally:
        await a.close()
        await b.close()
    rows = await db.fetch("SELECT tenant_id FROM chats WHERE id = 'shared' ORDER BY tenant_id")
    assert [r["tenant_id"] for r in rows] == ["acme", "globex"]
    async with api.client(api.key_b) as http:
        assert (await http.get("/v1/chat/shared/stream")).status_code == 204


async def test_authentication(api: Api) -> None:
    for url in (ws_url(api, "auth"), ws_url(api, "auth", api_key="pgpt_nope_nope")):
        async with connect(url) as ws:
            error = await recv(ws)
            assert isinstance(error, MsgError) and error.code == "unauthorized"
            assert api.key_a not in error.details
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1008
    for bad in (None, "pgpt_nope_nope"):
        client = AgentApi("demo", api.url, chat_id="auth", api_key=bad)
        with pytest.raises(AgentException) as refused:
            await client.connect()
        assert refused.value.code == "unauthorized"
    async with connect(ws_url(api, "auth", token=api.key_a)) as ws:  # ?token= works too
        assert isinstance(await recv(ws), MsgStatus)
    headers = {"Authorization": f"Bearer {api.key_a}"}
    async with connect(ws_url(api, "auth2"), additional_headers=headers) as ws:
        assert isinstance(await recv(ws), MsgStatus)


async def test_bad_messages_and_chats(api: Api, db: Database) -> None:
    async with connect(ws_url(api, "bad", api_key=api.key_a)) as ws:
        assert isinstance(await recv(ws), MsgStatus)
        for frame in (
            "not json",
            json.dumps({"type": "NOPE"}),
            json.dumps({"type": "USER_MESSAGE"}),
        ):
            await ws.send(frame)
            error = await recv(ws)
            assert isinstance(error, MsgError) and error.code == "malformed_message", frame
        await ws.send(b"\x00binary")
        error = await recv(ws)
        assert isinstance(error, MsgError) and error.code == "malformed_message"
        await ws.send(json.dumps({"type": "USER_MESSAGE", "text": "nul \u0000 inside"}))
        error = await recv(ws)  # refused by the task rules; the socket stays usable
        assert isinstance(error, MsgError) and error.code == "invalid_input"
    assert await tasks_of(db, "acme") == 0
    async with connect(ws_url(api, "bad", agent="streaming", api_key=api.key_a)) as ws:
        error = await recv(ws)  # the chat talks to demo since its first use
        assert isinstance(error, MsgError) and error.code == "invalid_input"
    async with connect(ws_url(api, "other", agent="nobody", api_key=api.key_a)) as ws:
        error = await recv(ws)
        assert isinstance(error, MsgError) and error.code == "unknown_agent"
    async with connect(ws_url(api, "bad%20id", api_key=api.key_a)) as ws:
        error = await recv(ws)
        assert isinstance(error, MsgError) and error.code == "invalid_input"


async def test_a_server_going_away_says_so(api: Api, start_process: StartProcess) -> None:
    """SIGTERM to a real API process: every open chat socket hears GRACEFUL_DISCONNECT."""
    server = start_process("api", env={"PROCESSGPT_API_PORT": "0"})
    await server.wait_for_log("api listening url=")
    match = re.search(r"api listening url=(\S+)", server.log())
    assert match is not None
    seen: list[ServerMessageUnion] = []
    gone: list[AgentApi] = []
    client = AgentApi(
        "demo",
        match[1],
        chat_id="leaving",
        api_key=api.key_a,
        callback=seen.append,
        on_disconnect=gone.append,
    )
    await client.connect()
    server.signal(signal.SIGTERM)
    await wait_until(lambda: gone == [client], timeout=10)
    assert any(isinstance(m, MsgGracefulDisconnect) for m in seen)
    assert not client.connected
    assert await server.wait(timeout=15) == 0

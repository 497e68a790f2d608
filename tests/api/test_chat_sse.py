"""The AI SDK ``useChat`` endpoints: ``POST /v1/chat`` and ``GET /v1/chat/{id}/stream``,
against real API and worker processes, checked with the strict UI message stream reader."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from processgpt.client.agent_api import AgentApi
from processgpt.db.database import Database
from tests.api.conftest import Api
from tests.protocols.ui_stream import validate
from tests.support import StartProcess, start_worker_process


@pytest.fixture
async def echo(start_process: StartProcess) -> None:
    await start_worker_process(
        start_process, "--executor", "tests.agents.executors:ChatEchoExecutor", agent="echo"
    )


def request(chat_id: str, text: str, **extra: Any) -> dict[str, Any]:
    """A body as the AI SDK's DefaultChatTransport sends it."""
    return {
        "id": chat_id,
        "trigger": "submit-message",
        "messageId": None,
        "messages": [
            {"id": "m0", "role": "user", "parts": [{"type": "text", "text": "earlier"}]},
            {"id": "m1", "role": "assistant", "parts": [{"type": "text", "text": "ok"}]},
            {"id": "m2", "role": "user", "parts": [{"type": "text", "text": text}]},
        ],
        **extra,
    }


async def post_chat(client: httpx.AsyncClient, body: dict[str, Any], **params: str) -> str:
    async with client.stream("POST", "/v1/chat", json=body, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        assert response.headers["content-type"].startswith("text/event-stream")
        return "".join([chunk async for chunk in response.aiter_text()])


async def test_post_chat_streams_a_valid_ui_message_stream(api: Api, db: Database) -> None:
    async with api.client() as client:
        raw = await post_chat(client, request("ui-1", "weather"), agent="streaming")
    stream = validate(raw)
    assert stream.done
    kinds = [p["type"] for p in stream.parts]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert stream.text == "Let me look that up.Found 3 results."
    assert stream.of_type("tool-input-available")[0]["input"] == {"q": "weather"}
    assert stream.of_type("data-result")[0]["data"] == {"answer": "3 results", "human": None}
    assert stream.parts[-1]["finishReason"] == "stop"
    task = await db.fetchrow("SELECT agent_orch, query, input FROM todolist")
    assert task is not None and (task["agent_orch"], task["query"]) == ("streaming", "weather")
    assert task["input"] == {"attachments": [], "chat_id": "ui-1", "history": []}


async def test_the_agent_sees_the_chat_history(api: Api, echo: None) -> None:
    async with api.client() as client:
        validate(await post_chat(client, request("ui-h", "one", agent="echo")))
        stream = validate(await post_chat(client, request("ui-h", "two")))  # agent is kept
    history = stream.of_type("tool-output-available")[0]["output"]
    assert history == [
        {"role": "user", "text": "one"},
        {"role": "assistant", "text": "echo: one "},
    ]
    assert stream.text == "echo: two "


async def test_resume_replays_a_running_turn_and_answers_204_otherwise(
    api: Api, echo: None
) -> None:
    async with api.client() as client:
        assert (await client.get("/v1/chat/ui-r/stream")).status_code == 204  # no such chat
        body = request("ui-r", "slow answer with several words", agent="echo")
        received = ""
        async with client.stream("POST", "/v1/chat", json=body) as response:
            async for chunk in response.aiter_text():
                received += chunk
                if received.count('"text-delta"') >= 2:
                    break  # the page reloads mid-reply
        async with client.stream("GET", "/v1/chat/ui-r/stream") as response:
            assert response.status_code == 200
            assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
            resumed = "".join([chunk async for chunk in response.aiter_text()])
        stream = validate(resumed)  # from the start of the turn: a fresh parser accepts it
        assert stream.done and stream.text == "echo: slow answer with several words "
        assert stream.text.startswith(validate(received + "data: [DONE]\n\n").text)
        assert (await client.get("/v1/chat/ui-r/stream")).status_code == 204  # it ended
    async with api.client(api.key_b) as other:  # another tenant never sees the chat
        assert (await other.get("/v1/chat/ui-r/stream")).status_code == 204


async def test_a_second_message_while_one_runs_is_refused(
    api: Api, db: Database, echo: None
) -> None:
    async with api.client() as client:
        body = request("ui-b", "slow and steady", agent="echo")
        async with client.stream("POST", "/v1/chat", json=body) as first:
            assert first.status_code == 200
            second = await client.post("/v1/chat", json=request("ui-b", "me too"))
            assert second.status_code == 409
            assert second.json()["error"]["code"] == "chat_busy"
            validate("".join([chunk async for chunk in first.aiter_text()]))
    assert await db.fetchval("SELECT count(*) FROM todolist") == 1


async def test_a_question_finishes_the_stream_and_the_next_message_answers(
    api: Api, db: Database, echo: None
) -> None:
    async with api.client() as client:
        asked = validate(await post_chat(client, request("ui-q", "ask: size?", agent="echo")))
        assert asked.of_type("data-human_asked")[0]["data"] == {"text": "size?", "type": "text"}
        assert asked.parts[-1] == {"type": "finish", "finishReason": "other"}
        raw = await post_chat(client, request("ui-q", "large"))
    answered = validate(raw, after=0)
    assert answered.of_type("data-result")[0]["data"]["answer"] == "large"
    assert not answered.of_type("data-human_asked")  # only what came after the answer
    assert await db.fetchval("SELECT count(*) FROM todolist") == 1


async def test_bad_requests(api: Api) -> None:
    async with api.client() as client:
        no_user = {"id": "ui-x", "messages": [{"role": "assistant", "parts": []}]}
        for body, code in (
            ({"id": "ui-x"}, "invalid_input"),
            (no_user, "invalid_input"),
            (request("bad id", "hi"), "invalid_input"),
            (request("ui-x", "hi", agent="nobody"), "unknown_agent"),
        ):
            response = await client.post("/v1/chat", json=body)
            assert response.status_code == 422, body
            assert response.json()["error"]["code"] == code
        validate(await post_chat(client, request("ui-x", "hi")))  # demo, the default agent
        wrong = await client.post("/v1/chat", json=request("ui-x", "hi", agent="streaming"))
        assert wrong.status_code == 422  # the chat talks to demo
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        response = await anonymous.post("/v1/chat", json=request("ui-x", "hi"))
        assert response.status_code == 401
        assert (await anonymous.get("/v1/chat/ui-x/stream")).status_code == 401


async def test_a_chat_started_over_http_continues_over_the_websocket(api: Api) -> None:
    async with api.client() as client:
        validate(await post_chat(client, request("both", "over http", agent="streaming")))
    ws = AgentApi("streaming", api.url, chat_id="both", api_key=api.key_a)
    await ws.connect()
    try:
        events = [e async for e in ws.send_message("over ws")]
        assert events[-1].type == "AGENT_EVENT_END"
    finally:
        await ws.close()

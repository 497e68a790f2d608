"""The A2A server (``/a2a/{agent}/``) driven by the official a2a-sdk client against a real API
process and a real worker serving ``demo``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from a2a.client import Client, ClientConfig, create_client
from a2a.helpers import new_text_message
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskState,
)
from google.protobuf.json_format import MessageToDict

from tests.api.conftest import Api


@asynccontextmanager
async def a2a_client(api: Api, *, streaming: bool = True) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {api.key_a}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        client = await create_client(
            f"{api.url}/a2a/demo/",
            client_config=ClientConfig(streaming=streaming, httpx_client=http),
        )
        try:
            yield client
        finally:
            await client.close()


def message(text: str, task_input: dict[str, Any] | None = None) -> SendMessageRequest:
    msg = new_text_message(text)
    msg.role = 1  # ROLE_USER
    msg.message_id = str(uuid.uuid4())
    if task_input is not None:
        msg.metadata.update({"input": task_input})
    return SendMessageRequest(message=msg)


def result_of(artifacts: Any) -> Any:
    part = artifacts[0].parts[0]
    return MessageToDict(part)["data"] if part.HasField("data") else json.loads(part.text)


async def test_agent_card_is_public(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        card = (await http.get("/a2a/demo/.well-known/agent-card.json")).json()
        missing = await http.get("/a2a/nope/.well-known/agent-card.json")
    assert card["name"] == "demo"
    assert card["capabilities"]["streaming"] is True
    assert card["supportedInterfaces"][0]["url"] == f"{api.url}/a2a/demo/"
    assert missing.status_code == 404


async def test_auth_required(api: Api) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": str(uuid.uuid4())}}
    async with httpx.AsyncClient(base_url=api.url) as http:
        response = await http.post("/a2a/demo/", json=body)
        wrong = await http.post(
            "/a2a/demo/", json=body, headers={"Authorization": "Bearer pgpt_nope"}
        )
    assert response.status_code == 401
    assert wrong.status_code == 401


async def test_send_returns_completed_task(api: Api) -> None:
    async with a2a_client(api, streaming=False) as client:
        events = [e async for e in client.send_message(message("hello a2a world"))]
        assert len(events) == 1
        task = events[0].task
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        result = result_of(task.artifacts)
        assert result["upper"] == "HELLO A2A WORLD"
        assert result["words"] == 3
        got = await client.get_task(GetTaskRequest(id=task.id))
    assert got.status.state == TaskState.TASK_STATE_COMPLETED
    assert result_of(got.artifacts)["query"] == "hello a2a world"
    # The same task through the REST API: A2A ids are ours.
    async with api.client() as http:
        row = (await http.get(f"/v1/tasks/{task.id}")).json()
    assert row["agent_orch"] == "demo"
    assert row["status"] == "DONE"


async def test_stream_yields_updates_and_artifact(api: Api) -> None:
    async with a2a_client(api) as client:
        kinds: list[str] = []
        events: list[StreamResponse] = []
        async for event in client.send_message(message("stream me", {"steps": 3})):
            kinds.append(event.WhichOneof("payload"))
            events.append(event)
    assert kinds[0] == "task"
    assert kinds.count("status_update") >= 4  # task_started + 3 × task_working + completed
    artifact = next(e.artifact_update for e in events if e.HasField("artifact_update"))
    assert result_of([artifact.artifact])["upper"] == "STREAM ME"
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    steps = [
        MessageToDict(e.status_update.metadata).get("event_type")
        for e in events
        if e.HasField("status_update")
    ]
    assert steps[:2] == ["task_started", "task_working"]


async def test_cancel_running_task(api: Api) -> None:
    async with a2a_client(api) as client:
        stream = client.send_message(message("long", {"steps": 100, "delay": 0.1}))
        first = await anext(stream)
        task_id = first.task.id
        async for event in stream:  # wait until it runs
            if event.HasField("status_update"):
                break
        cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
        last = None
        async for event in stream:
            last = event
        await stream.aclose()
        assert last is not None
        assert last.status_update.status.state == TaskState.TASK_STATE_CANCELED
        got = await client.get_task(GetTaskRequest(id=task_id))
    assert got.status.state == TaskState.TASK_STATE_CANCELED


async def test_resubscribe_after_dropped_stream(api: Api) -> None:
    async with a2a_client(api) as client:
        stream = client.send_message(message("resume me", {"steps": 10, "delay": 0.1}))
        task_id = (await anext(stream)).task.id
        async for event in stream:
            if event.HasField("status_update"):
                break
        await stream.aclose()  # the connection drops
        await asyncio.sleep(0.3)
        rest = [e async for e in client.subscribe(SubscribeToTaskRequest(id=task_id))]
        again = [e async for e in client.subscribe(SubscribeToTaskRequest(id=task_id))]
    assert rest[0].HasField("task")
    assert rest[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    artifact = next(e.artifact_update for e in rest if e.HasField("artifact_update"))
    assert result_of([artifact.artifact])["steps"] == 10
    # Subscribing to an ended task gives its final snapshot.
    assert len(again) == 1
    assert again[0].task.status.state == TaskState.TASK_STATE_COMPLETED


async def test_v03_method_names(api: Api) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": "x",
        "method": "message/send",
        "params": {
            "message": {
                "kind": "message",
                "messageId": str(uuid.uuid4()),
                "role": "user",
                "parts": [{"kind": "text", "text": "old client"}],
            }
        },
    }
    async with api.client() as http:
        response = await http.post("/a2a/demo/", json=body)
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        assert result["kind"] == "task"
        assert result["status"]["state"] == "completed"
        got = await http.post(
            "/a2a/demo/",
            json={"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": result["id"]}},
        )
    assert got.json()["result"]["status"]["state"] == "completed"


async def test_a_question_is_answered_by_a_message_to_the_same_task(api: Api) -> None:
    async with a2a_client(api, streaming=False) as client:
        asked = [e async for e in client.send_message(message("order", {"ask": "Which size?"}))]
        task = asked[-1].task
        assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        answer = message("large")
        answer.message.task_id = task.id
        answered = [e async for e in client.send_message(answer)]
        done = answered[-1].task
    assert done.id == task.id
    assert done.status.state == TaskState.TASK_STATE_COMPLETED
    assert result_of(done.artifacts)["answer"] == "large"
    async with api.client() as http:
        events = (await http.get(f"/v1/tasks/{task.id}/events")).json()["items"]
    kinds = [e["event_type"] for e in events]
    assert kinds.index("human_asked") < kinds.index("human_response")


async def test_bad_a2a_input_gets_json_rpc_errors_without_internals(api: Api, db: Any) -> None:
    headers = {"Authorization": f"Bearer {api.key_a}", "content-type": "application/json"}

    def send(text: str) -> dict[str, Any]:
        return {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "message/send",
            "params": {
                "message": {
                    "role": "user",
                    "messageId": str(uuid.uuid4()),
                    "parts": [{"kind": "text", "text": text}],
                },
                "configuration": {"blocking": False},
            },
        }

    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30) as http:
        not_utf8 = json.dumps(send("PLACEHOLDER")).encode().replace(b"PLACEHOLDER", b"\xff\xfe")
        answers = [
            await http.post("/a2a/demo/", content=not_utf8),
            await http.post("/a2a/demo/", json=send("nul \x00 inside")),
            await http.post("/a2a/demo/", content=json.dumps(send("lone \udcff surrogate"))),
            await http.post("/a2a/demo/", content=b"[" * 100_000 + b"]" * 100_000),
        ]
        for answer in answers:
            assert answer.status_code == 200, answer.text
            error = answer.json()["error"]
            assert error["code"] in (-32700, -32602), error  # parse error / invalid params
            text = json.dumps(error)
            for internal in ("Traceback", "asyncpg", "pydantic", 'File "', "errors.pydantic.dev"):
                assert internal not in text, text
        unknown = await http.post("/a2a/nobody/", json=send("hi"))
        assert unknown.status_code == 404, unknown.text
        assert unknown.json()["error"]["code"] == "unknown_agent"
        assert "demo" in unknown.json()["error"]["message"]  # it names the agents there are
    assert await db.fetchval("SELECT count(*) FROM todolist") == 0

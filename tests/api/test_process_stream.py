"""GET /v1/processes/{id}/stream: a process instance's history and every one of its tasks,
resumable by cursor."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from processgpt.protocols.sse import SSEFrame, parse_frames
from tests.api.conftest import Api
from tests.api.test_process_instances_api import publish, purchase
from tests.api.test_tasks_api import wait_status


async def read_stream(api: Api, proc_inst_id: str, last_event_id: str | None = None) -> str:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    async with (
        api.client() as client,
        client.stream("GET", f"/v1/processes/{proc_inst_id}/stream", headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        return "".join([chunk async for chunk in response.aiter_text()])


def parts(frames: list[SSEFrame]) -> list[dict[str, Any]]:
    return [json.loads(f.data) for f in frames if f.data is not None and not f.done]


def events_of(frames: list[SSEFrame]) -> list[tuple[str, int]]:
    return [
        (p["data"]["task_id"], p["data"]["seq"])
        for p in parts(frames)
        if p["type"] == "data-task_event"
    ]


async def start(api: Api, **task: Any) -> dict[str, Any]:
    async with api.client() as client:
        response = await client.post("/v1/processes", json={"name": "p", "task": task})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]


async def test_a_process_with_one_task_streams_its_events_and_ends(api: Api) -> None:
    view = await start(api, agent_orch="streaming", query="proc", input={"pause": 0.8})
    proc_id, task_id = view["process"]["proc_inst_id"], view["tasks"][0]["id"]
    frames = parse_frames(await read_stream(api, proc_id))
    assert frames[-1].done
    body = parts(frames)
    assert body[0] == {"type": "start", "messageId": proc_id}
    assert body[-1] == {"type": "finish", "finishReason": "stop"}
    async with api.client() as client:
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert events_of(frames) == [(task_id, seq) for seq in range(1, task["last_seq"] + 1)]
    statuses = [p for p in body if p["type"] == "data-task_status"]
    assert statuses[-1]["id"] == task_id and statuses[-1]["data"]["status"] == "DONE"
    assert statuses[-1]["data"]["output"] == {"answer": "3 results", "human": None}
    kinds = [p["data"]["event_type"] for p in body if p["type"] == "data-task_event"]
    assert "tool_usage_started" in kinds and "crew_completed" in kinds
    for frame in frames:  # every event frame carries the cursor, and only those
        is_event = frame.data is not None and '"data-task_event"' in frame.data
        assert (frame.id is not None) == is_event
    assert frames[-4].id == f"{task_id.replace('-', '')}:{task['last_seq']}"


async def test_resume_with_last_event_id_continues_exactly_after_it(api: Api) -> None:
    view = await start(api, agent_orch="streaming", query="proc", input={"pause": 0.3})
    proc_id = view["process"]["proc_inst_id"]
    full = parse_frames(await read_stream(api, proc_id))
    with_ids = [f for f in full if f.id is not None]
    middle = with_ids[len(with_ids) // 2]
    resumed = parse_frames(await read_stream(api, proc_id, last_event_id=middle.id))
    assert resumed[-1].done
    expected = events_of(full)[len(with_ids) // 2 + 1 :]
    assert events_of(resumed) == expected
    assert parts(resumed)[0]["type"] == "start"
    # resuming from the end replays nothing but the statuses and the finish
    end = parse_frames(await read_stream(api, proc_id, last_event_id=with_ids[-1].id))
    assert events_of(end) == []
    assert [p["type"] for p in parts(end)] == ["start", "data-task_status", "finish"]


async def test_all_tasks_of_the_process_are_followed(api: Api) -> None:
    view = await start(api, agent_orch="demo", query="one", input={"steps": 3, "delay": 0.2})
    proc_id = view["process"]["proc_inst_id"]
    async with api.client() as client:
        second = (
            await client.post(
                "/v1/tasks",
                json={"agent_orch": "streaming", "query": "two", "proc_inst_id": proc_id},
            )
        ).json()
        frames = parse_frames(await read_stream(api, proc_id))
        first = await wait_status(client, view["tasks"][0]["id"], "DONE")
        other = await wait_status(client, second["id"], "DONE")
    seen = events_of(frames)
    for task in (first, other):
        assert [s for t, s in seen if t == task["id"]] == list(range(1, task["last_seq"] + 1))
    done = {p["id"] for p in parts(frames) if p["type"] == "data-task_status"}
    assert done == {first["id"], other["id"]}
    last_cursor = [f.id for f in frames if f.id is not None][-1]
    assert last_cursor is not None and len(last_cursor.split(",")) == 2


async def test_a_failed_task_finishes_with_error_and_a_waiting_one_keeps_it_open(
    api: Api,
) -> None:
    view = await start(
        api, agent_orch="demo", max_attempts=1, input={"steps": 0, "fail_attempts": 1}
    )
    body = parts(parse_frames(await read_stream(api, view["process"]["proc_inst_id"])))
    assert body[-1] == {"type": "finish", "finishReason": "error"}
    failed = [p for p in body if p["type"] == "data-task_status"][-1]["data"]
    assert failed["status"] == "FAILED" and failed["error"] is not None

    asking = await start(api, agent_orch="demo", input={"steps": 0, "ask": "ok?"})
    proc_id, task_id = asking["process"]["proc_inst_id"], asking["tasks"][0]["id"]
    async with api.client() as client:
        await wait_status(client, task_id, "INPUT_REQUIRED")
        received = ""
        async with client.stream("GET", f"/v1/processes/{proc_id}/stream") as response:
            async for chunk in response.aiter_text():
                received += chunk
                if ": heartbeat" in received:
                    break  # still open while the task waits for a person
        assert '"INPUT_REQUIRED"' in received and "[DONE]" not in received
        await client.post(f"/v1/tasks/{task_id}/input", json={"answer": "yes"})
        cursor = [f.id for f in parse_frames(received) if f.id is not None][-1]
    rest = parse_frames(await read_stream(api, proc_id, last_event_id=cursor))
    assert rest[-1].done and parts(rest)[-1]["finishReason"] == "stop"


async def test_process_stream_errors(api: Api) -> None:
    view = await start(api, agent_orch="demo", input={"steps": 0})
    proc_id = view["process"]["proc_inst_id"]
    async with api.client() as client:
        for bad in ("abc", "123", "zz:1", f"{'0' * 32}:x", "h:x", "h:-1", "h:1,h"):
            r = await client.get(f"/v1/processes/{proc_id}/stream", headers={"Last-Event-ID": bad})
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["error"]["code"] == "invalid_input"
        missing = await client.get("/v1/processes/00000000-0000-0000-0000-000000000000/stream")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "process_not_found"
    async with api.client(api.key_b) as other_tenant:
        hidden = await other_tenant.get(f"/v1/processes/{proc_id}/stream")
        assert hidden.status_code == 404


def history_of(frames: list[SSEFrame]) -> list[tuple[int, str]]:
    return [
        (p["data"]["seq"], p["data"]["kind"])
        for p in parts(frames)
        if p["type"] == "data-process_event"
    ]


async def _run_purchase(api: Api, proc_id: str) -> None:
    """Take the purchase instance to its end: both forms, then the payment message."""
    async with api.client() as client:
        for output in ({"request_form": {"amount": 3}}, {"approval_form": {"decision": "approve"}}):
            (task,) = (await client.get(f"/v1/processes/{proc_id}")).json()["open_tasks"]
            done = await client.post(f"/v1/tasks/{task['id']}/complete", json={"output": output})
            assert done.status_code == 200, done.text
        paid = await client.post(f"/v1/processes/{proc_id}/messages/payment", json={})
        assert paid.json()["status"] == "COMPLETED"


async def test_a_driven_instance_streams_its_history_live_and_ends(api: Api) -> None:
    async with api.client() as client:
        await publish(client, purchase())
        started = await client.post("/v1/processes", json={"proc_def_id": "purchase"})
        proc_id = started.json()["id"]
    live = asyncio.create_task(read_stream(api, proc_id))  # open while nothing moves
    await asyncio.sleep(0.5)
    assert not live.done()  # a person's step keeps it open
    await _run_purchase(api, proc_id)
    frames = parse_frames(await asyncio.wait_for(live, 60))
    assert frames[-1].done
    body = parts(frames)
    assert body[0] == {"type": "start", "messageId": proc_id}
    assert body[-1] == {"type": "finish", "finishReason": "stop"}
    async with api.client() as client:
        lines = (await client.get(f"/v1/processes/{proc_id}/history")).json()["items"]
    assert history_of(frames) == [(line["seq"], line["kind"]) for line in lines]
    assert history_of(frames)[-1][1] == "instance_completed"
    snapshots = [p for p in body if p["type"] == "data-process_status"]
    assert snapshots[0]["id"] == proc_id and snapshots[0]["data"]["status"] == "RUNNING"
    assert snapshots[-1]["data"] == {
        "proc_inst_id": proc_id,
        "status": "COMPLETED",
        "current_activity_ids": [],
    }
    statuses = {p["id"]: p["data"]["status"] for p in body if p["type"] == "data-task_status"}
    assert list(statuses.values()) == ["DONE", "DONE"]
    ids = [f.id for f in frames if f.id is not None]
    assert ids[-1].startswith(f"h:{len(lines)}")  # type: ignore[union-attr]

    # resumed from any history frame: exactly the rest of the stream
    history_frames = [f for f in frames if f.data and '"data-process_event"' in f.data]
    middle = history_frames[len(history_frames) // 2]
    assert middle.id is not None
    resumed = parse_frames(await read_stream(api, proc_id, last_event_id=middle.id))
    seen = history_of(frames)
    assert history_of(resumed) == seen[seen.index(history_of([middle])[0]) + 1 :]
    position = dict(item.split(":") for item in middle.id.split(","))
    expected = [
        (task, seq)
        for task, seq in events_of(frames)
        if seq > int(position.get(task.replace("-", ""), 0))
    ]
    assert sorted(events_of(resumed)) == sorted(expected)  # not delivered yet, each once
    assert parts(resumed)[-1]["finishReason"] == "stop"


async def test_a_cancelled_instance_ends_its_stream(api: Api) -> None:
    async with api.client() as client:
        await publish(client, purchase())
        proc_id = (await client.post("/v1/processes", json={"proc_def_id": "purchase"})).json()[
            "id"
        ]
        live = asyncio.create_task(read_stream(api, proc_id))
        await asyncio.sleep(0.3)
        assert (await client.post(f"/v1/processes/{proc_id}/cancel")).status_code == 200
    body = parts(parse_frames(await asyncio.wait_for(live, 60)))
    assert body[-1] == {"type": "finish", "finishReason": "other"}
    assert [p["data"]["status"] for p in body if p["type"] == "data-task_status"][-1] == (
        "CANCELLED"
    )

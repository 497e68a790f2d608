"""SSE in the AI SDK UI message stream protocol: strict parsing, resume, late join."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tests.api.conftest import Api
from tests.api.test_tasks_api import wait_status
from tests.protocols.ui_stream import UIStream, parse_frames, validate


async def read_all(api: Api, task_id: str, last_event_id: int | None = None) -> str:
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    async with (
        api.client() as client,
        client.stream("GET", f"/v1/tasks/{task_id}/stream", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        assert response.headers["content-type"].startswith("text/event-stream")
        return "".join([chunk async for chunk in response.aiter_text()])


async def test_a_live_stream_is_valid_and_complete(api: Api) -> None:
    async with api.client() as client:
        task = (
            await client.post(
                "/v1/tasks",
                json={"agent_orch": "streaming", "query": "weather", "input": {"pause": 1.2}},
            )
        ).json()
    raw = await read_all(api, task["id"])  # joined while it runs, follows to the end
    stream = validate(raw)
    assert stream.done and stream.comments >= 1  # heartbeats while the tool "ran"
    kinds = [p["type"] for p in stream.parts]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert stream.text == "Let me look that up.Found 3 results."
    assert kinds.count("text-start") == 2  # the tool call closed the first text part
    assert stream.of_type("tool-input-available")[0]["input"] == {"q": "weather"}
    assert stream.of_type("tool-output-available")[0]["output"] == {"hits": 3}
    assert stream.of_type("data-progress")[0]["data"] == {"status": "summarising", "pct": 50}
    assert "start-step" in kinds and "finish-step" in kinds
    assert stream.of_type("data-result")[0]["data"] == {"answer": "3 results", "human": None}
    assert stream.parts[-1]["finishReason"] == "stop"
    # token deltas were coalesced: far fewer rows than pieces of text
    assert len(stream.of_type("text-delta")) < 7


async def test_a_dropped_client_resumes_with_exactly_the_missing_events(api: Api) -> None:
    async with api.client() as client:
        task = (
            await client.post(
                "/v1/tasks",
                json={"agent_orch": "streaming", "query": "resume", "input": {"pause": 1.0}},
            )
        ).json()
        received = ""
        async with client.stream("GET", f"/v1/tasks/{task['id']}/stream") as response:
            async for chunk in response.aiter_text():
                received += chunk
                if "tool-input-available" in received:
                    break  # drop the connection mid-task
    frames, _ = parse_frames(received)
    last_id = max(f.id for f in frames if f.id is not None)
    resumed_raw = await read_all(api, task["id"], last_event_id=last_id)
    resumed = validate(resumed_raw, after=last_id)  # a fresh parser accepts it
    full = validate(await read_all(api, task["id"]))
    assert resumed.ids == [i for i in full.ids if i > last_id]
    first = validate(received)
    assert first.text + resumed.text == full.text
    assert resumed.of_type("tool-output-available")  # the open call was re-opened first
    assert resumed.parts[0]["type"] == "start"


async def test_a_client_joining_after_the_end_gets_the_whole_stream(api: Api) -> None:
    async with api.client() as client:
        task = (
            await client.post("/v1/tasks", json={"agent_orch": "streaming", "query": "late"})
        ).json()
        await wait_status(client, task["id"], "DONE")
    stream = validate(await read_all(api, task["id"]))
    assert stream.done and stream.text == "Let me look that up.Found 3 results."
    again = validate(
        await read_all(api, task["id"], last_event_id=stream.ids[-1]), after=stream.ids[-1]
    )
    assert again.done and [p["type"] for p in again.parts] == ["start", "data-result", "finish"]


async def test_stream_errors(api: Api) -> None:
    async with api.client() as client:
        task = (
            await client.post("/v1/tasks", json={"agent_orch": "demo", "input": {"steps": 0}})
        ).json()
        bad = await client.get(f"/v1/tasks/{task['id']}/stream", headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
        missing = await client.get("/v1/tasks/00000000-0000-0000-0000-000000000000/stream")
        assert missing.status_code == 404


async def test_a_failed_task_ends_with_an_error_part(api: Api) -> None:
    async with api.client() as client:
        task = (
            await client.post(
                "/v1/tasks",
                json={"agent_orch": "demo", "max_attempts": 1, "input": {"fail_attempts": 1}},
            )
        ).json()
        await wait_status(client, task["id"], "FAILED")
    stream = validate(await read_all(api, task["id"]))
    assert stream.of_type("error")[0]["errorText"].startswith("RetryLater")
    assert stream.parts[-1] == {"type": "finish", "finishReason": "error"}


async def test_every_frame_with_an_id_has_data_even_for_an_event_without_a_part(api: Api) -> None:
    """``crew_completed`` shows nothing of its own (the result comes with the finish): its
    frame still carries a (transient) data part with its seq, and resuming there is exact."""
    async with api.client() as client:
        task = (
            await client.post(
                "/v1/tasks", json={"agent_orch": "demo", "input": {"steps": 1, "delay": 0}}
            )
        ).json()
        await wait_status(client, task["id"], "DONE")
    raw = await read_all(api, task["id"])
    frames, _ = parse_frames(raw)
    assert [f for f in frames if f.id is not None and not f.data] == []
    stream = validate(raw)
    completed = stream.of_type("data-crew_completed")
    assert completed == [
        {"type": "data-crew_completed", "data": {"status": "completed"}, "transient": True}
    ]
    last = stream.ids[-1]  # the seq of crew_completed, the last event
    before = validate(await read_all(api, task["id"], last_event_id=last - 1), after=last - 1)
    assert before.ids == [last]
    assert [p["type"] for p in before.parts] == [
        "start",
        "data-crew_completed",
        "data-result",
        "finish",
    ]
    after = validate(await read_all(api, task["id"], last_event_id=last), after=last)
    assert after.ids == []
    assert [p["type"] for p in after.parts] == ["start", "data-result", "finish"]


class LiveStream:
    """An open task stream read chunk by chunk, so a test can act while it runs."""

    def __init__(self, chunks: AsyncIterator[str]) -> None:
        self.chunks = chunks
        self.raw = ""

    async def until(self, text: str, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while text not in self.raw:
                self.raw += await anext(self.chunks)

    async def to_the_end(self) -> str:
        async for chunk in self.chunks:
            self.raw += chunk
        return self.raw


def statuses(stream: UIStream) -> list[str]:
    return [p["data"]["status"] for p in stream.of_type("data-task_status")]


async def test_a_task_waiting_for_input_says_so_and_its_stream_goes_on(api: Api) -> None:
    waiting = '"status":"INPUT_REQUIRED"'
    async with api.client() as client:
        task = (
            await client.post(
                "/v1/tasks",
                json={"agent_orch": "streaming", "query": "q", "input": {"ask": "Which city?"}},
            )
        ).json()
        path = f"/v1/tasks/{task['id']}/stream"
        async with client.stream("GET", path) as response:
            live = LiveStream(response.aiter_text())
            await live.until(waiting)
            snapshot = validate(live.raw).of_type("data-task_status")[-1]
            assert snapshot["id"] == task["id"] and snapshot["data"]["agent_orch"] == "streaming"
            # A client joining now sees the wait too, and its stream stays open: a heartbeat
            # (sent after 0.5 s of silence) comes after the snapshot, and no finish.
            seq = (await client.get(f"/v1/tasks/{task['id']}")).json()["last_seq"]
            async with client.stream("GET", path, headers={"Last-Event-ID": str(seq)}) as joined:
                late = LiveStream(joined.aiter_text())
                await late.until(waiting)
                await late.until(": heartbeat", timeout=10)
                assert late.raw.index(waiting) < late.raw.index(": heartbeat")
            assert "finish" not in late.raw and "[DONE]" not in late.raw
            answered = await client.post(f"/v1/tasks/{task['id']}/input", json={"answer": "Oslo"})
            assert answered.status_code == 200, answered.text
            raw = await asyncio.wait_for(live.to_the_end(), 30)
    stream = validate(raw)
    kinds = [p["type"] for p in stream.parts]
    assert kinds.index("data-human_asked") < kinds.index("data-task_status")
    assert kinds.index("data-task_status") < kinds.index("data-human_response")
    seen = statuses(stream)
    assert seen[0] == "INPUT_REQUIRED" and seen[-1] == "DONE" and "INPUT_REQUIRED" not in seen[1:]
    assert stream.of_type("data-result")[0]["data"] == {"answer": "3 results", "human": "Oslo"}
    assert stream.parts[-1] == {"type": "finish", "finishReason": "stop"}
    assert stream.text == "Let me look that up.Found 3 results."
    # A replay of the finished task shows its log: the question and the answer, no snapshot.
    replay = validate(await read_all(api, task["id"]))
    assert statuses(replay) == [] and replay.of_type("data-human_response")

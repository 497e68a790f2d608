"""The Python HTTP client against a real API process: calls, errors, typed streams, and
automatic resume across dropped connections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from processgpt.client import ApiError, ProcessGPTClient, ReconnectPolicy, StreamPart
from processgpt.domain.task import Task, TaskStatus
from processgpt.protocols.sse import (
    DataPart,
    FinishPart,
    ResumeCursor,
    SSEDecoder,
    StartPart,
    TextDeltaPart,
    ToolInputAvailablePart,
    ToolOutputAvailablePart,
    parse_frames,
)
from tests.api import conftest as api_fixtures
from tests.api.conftest import Api

api = api_fixtures.api  # the real API + workers fixture of tests/api

FAST = ReconnectPolicy(max_retries=5, base_delay=0.01, max_delay=0.05)


class _Cut(httpx.AsyncByteStream):
    """A response body that fails with ReadError after ``limit`` bytes."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self.inner:
            if sent + len(chunk) >= self.limit:
                yield chunk[: self.limit - sent]
                raise httpx.ReadError("connection dropped (test)")
            sent += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class DroppingTransport(httpx.AsyncBaseTransport):
    """Real HTTP; the n-th stream response is cut after ``cuts[n]`` bytes (then no more cuts)."""

    def __init__(self, cuts: list[int]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.cuts = list(cuts)
        self.stream_requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/stream"):
            self.stream_requests.append(request)
            if self.cuts:
                stream: Any = response.stream
                return httpx.Response(
                    response.status_code,
                    headers=response.headers,
                    stream=_Cut(stream, self.cuts.pop(0)),
                    extensions=response.extensions,
                )
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def client(api: Api, key: str | None = None, **kwargs: Any) -> ProcessGPTClient:
    return ProcessGPTClient(api.url, key or api.key_a, reconnect=FAST, **kwargs)


async def wait_for(pg: ProcessGPTClient, task_id: uuid.UUID, status: TaskStatus) -> Task:
    for _ in range(300):
        task = await pg.get_task(task_id)
        if task.status is status:
            return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} never reached {status}")


def signature(parts: list[StreamPart]) -> list[tuple[str, dict[str, Any], str | None]]:
    return [(p.type, p.model_dump(by_alias=True), p.event_id) for p in parts]


def test_resume_cursor_does_not_count_status_snapshots() -> None:
    """A snapshot is sent again on a new connection only while it applies: the frames that
    follow on the new connection must not be taken for the snapshot and skipped."""
    cursor = ResumeCursor()
    cursor.connect()
    status = '{"type":"data-task_status","id":"t","data":{"status":"INPUT_REQUIRED"}}'
    first = parse_frames(
        f'data: {{"type":"start"}}\n\nid: 1\ndata: {{"type":"start-step"}}\n\ndata: {status}\n\n'
    )
    assert [p.type for f in first if (p := cursor.accept(f))] == [
        "start",
        "start-step",
        "data-task_status",
    ]
    assert cursor.connect() == "1"
    # answered meanwhile: no snapshot now, and the next event begins with an id-less part
    again = parse_frames(
        'data: {"type":"start"}\n\ndata: {"type":"start-step"}\n\n'
        'data: {"type":"finish-step"}\n\nid: 2\ndata: {"type":"start-step"}\n\n'
    )
    assert [p.type for f in again if (p := cursor.accept(f))] == ["finish-step", "start-step"]
    assert cursor.connect() == "2"
    # still waiting at a reconnection: the snapshot comes again, nothing else is repeated
    third = parse_frames(
        f'data: {{"type":"start"}}\n\ndata: {{"type":"start-step"}}\n\ndata: {status}\n\n'
    )
    assert [p.type for f in third if (p := cursor.accept(f))] == ["data-task_status"]


async def test_tasks_over_the_client(api: Api) -> None:
    async with client(api) as pg:
        task = await pg.create_task(
            "demo", "from the client", input={"steps": 1, "delay": 0}, idempotency_key="c-1"
        )
        again = await pg.create_task("demo", "other", idempotency_key="c-1")
        assert again.id == task.id
        done = await wait_for(pg, task.id, TaskStatus.DONE)
        assert done.output["upper"] == "FROM THE CLIENT"
        page = await pg.events(task.id, after=1)
        assert [e.seq for e in page.items] == [2, 3] and page.next_after == 3
        assert (await pg.feedback(task.id, "shorter")).feedback == "shorter"

        later = datetime.now(UTC) + timedelta(days=1)
        scheduled = [
            await pg.create_task("demo", f"q{i}", run_at=later, priority=i) for i in range(5)
        ]
        listed = [t.id async for t in pg.list_tasks(status="PENDING", page_size=2)]
        assert listed == [t.id for t in reversed(scheduled)]
        assert len([t async for t in pg.list_tasks(agent_orch="demo", limit=3)]) == 3
        page2 = await pg.list_tasks_page(status=TaskStatus.PENDING, limit=2)
        assert len(page2.items) == 2 and page2.next_cursor is not None

        cancelled = await pg.cancel_task(scheduled[0].id, reason="not needed")
        assert cancelled.status is TaskStatus.CANCELLED
        requeued = await pg.requeue_task(scheduled[0].id)
        assert requeued.status is TaskStatus.PENDING

        asking = await pg.create_task("demo", "q", input={"steps": 0, "ask": "Which colour?"})
        await wait_for(pg, asking.id, TaskStatus.INPUT_REQUIRED)
        await pg.answer(asking.id, "blue")
        answered = await wait_for(pg, asking.id, TaskStatus.DONE)
        assert answered.output["answer"] == "blue"


async def test_errors_raise_api_error_with_the_code(api: Api) -> None:
    async with client(api) as pg:
        missing = uuid.UUID(int=0)
        with pytest.raises(ApiError) as err:
            await pg.get_task(missing)
        assert err.value.status == 404 and err.value.code == "task_not_found"
        with pytest.raises(ApiError) as err:
            await pg.create_task("no-such-agent")
        assert err.value.status == 422 and err.value.code == "unknown_agent"
        with pytest.raises(ApiError) as err:
            await pg.create_task("demo", priority=5000)
        assert err.value.code == "invalid_input"
        task = await pg.create_task("demo", input={"steps": 0})
        await wait_for(pg, task.id, TaskStatus.DONE)
        with pytest.raises(ApiError) as err:
            await pg.cancel_task(task.id)
        assert err.value.status == 409 and err.value.code == "invalid_state"
        with pytest.raises(ApiError) as err:
            async for _ in pg.stream(missing):
                pass
        assert err.value.code == "task_not_found"
        with pytest.raises(ApiError) as err:
            await pg.get_process(missing)
        assert err.value.code == "process_not_found"
    async with ProcessGPTClient(api.url, "pgpt_not_a_key") as anon:
        with pytest.raises(ApiError) as err:
            await anon.get_task(missing)
        assert err.value.status == 401 and err.value.code == "unauthorized"


async def test_stream_yields_typed_parts(api: Api) -> None:
    async with client(api) as pg:
        task = await pg.create_task("streaming", "weather")
        parts = [p async for p in pg.stream(task.id)]
    assert isinstance(parts[0], StartPart) and parts[0].message_id == str(task.id)
    assert isinstance(parts[-1], FinishPart) and parts[-1].finish_reason == "stop"
    text = "".join(p.delta for p in parts if isinstance(p, TextDeltaPart))
    assert text == "Let me look that up.Found 3 results."
    call = next(p for p in parts if isinstance(p, ToolInputAvailablePart))
    assert call.tool_name == "search" and call.input == {"q": "weather"}
    output = next(p for p in parts if isinstance(p, ToolOutputAvailablePart))
    assert output.tool_call_id == call.tool_call_id and output.output == {"hits": 3}
    result = next(p for p in parts if isinstance(p, DataPart) and p.name == "result")
    assert result.data == {"answer": "3 results", "human": None}
    seqs = [p.seq for p in parts if p.seq is not None]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)) and seqs[0] >= 1


async def test_a_dropped_live_stream_resumes_without_loss_or_repeats(api: Api) -> None:
    transport = DroppingTransport([700, 300])
    async with client(api, transport=transport) as pg:
        task = await pg.create_task("streaming", "live", input={"pause": 1.0})
        resumed = [p async for p in pg.stream(task.id)]
    assert len(transport.stream_requests) == 3
    assert "last-event-id" not in transport.stream_requests[0].headers
    assert transport.stream_requests[1].headers["last-event-id"].isdigit()
    async with client(api) as pg:
        full = [p async for p in pg.stream(task.id)]
    assert signature(resumed) == signature(full)


async def test_drops_at_any_byte_resume_exactly(api: Api) -> None:
    async with client(api) as pg:
        task = await pg.create_task("streaming", "replay")
        await wait_for(pg, task.id, TaskStatus.DONE)
        full = [p async for p in pg.stream(task.id)]
        async with pg._http.stream("GET", f"/v1/tasks/{task.id}/stream") as response:
            size = len(await response.aread())
    for cut in range(1, size, max(1, size // 60)):
        transport = DroppingTransport([cut, max(1, cut // 2), cut + 40])
        async with client(api, transport=transport) as pg:
            got = [p async for p in pg.stream(task.id)]
        assert signature(got) == signature(full), f"cut at {cut}"
    # starting from a position, too
    middle = next(p.seq for p in full[len(full) // 2 :] if p.seq is not None)
    assert middle is not None
    async with client(api) as pg:
        tail = [p async for p in pg.stream(task.id, after=middle)]
    async with client(api, transport=DroppingTransport([40, 90])) as pg:
        tail_dropped = [p async for p in pg.stream(task.id, after=middle)]
    assert signature(tail_dropped) == signature(tail)


async def test_the_stream_gives_up_after_the_policy(api: Api) -> None:
    policy = ReconnectPolicy(max_retries=2, base_delay=0.01, max_delay=0.01)
    transport = DroppingTransport([5] * 10)
    async with ProcessGPTClient(api.url, api.key_a, reconnect=policy, transport=transport) as pg:
        task = await pg.create_task("demo", input={"steps": 0})
        with pytest.raises(ApiError) as err:
            async for _ in pg.stream(task.id):
                pass
    assert err.value.code == "stream_broken"
    assert len(transport.stream_requests) == 3


async def test_process_stream_over_the_client(api: Api) -> None:
    transport = DroppingTransport([600])
    async with client(api, transport=transport) as pg:
        view = await pg.start_process("streaming", "p", name="order 1", input={"pause": 0.5})
        assert view.process["proc_inst_name"] == "order 1"
        parts = [p async for p in pg.stream_process(view.process["proc_inst_id"])]
        again = await pg.get_process(view.process["proc_inst_id"])
    assert len(transport.stream_requests) == 2
    assert [p.type for p in parts].count("start") == 1
    events = [p.data for p in parts if isinstance(p, DataPart) and p.name == "task_event"]
    assert [e["seq"] for e in events] == list(range(1, again.tasks[0].last_seq + 1))
    assert isinstance(parts[-1], FinishPart) and parts[-1].finish_reason == "stop"


def test_sse_decoder_handles_any_split() -> None:
    raw = (
        ': heartbeat\r\n\r\nid: 1\ndata: {"type":"start"}\n\n'
        'data: {"type":"text-start","id":"t"}\r\nid: 2\r\n\r\n'
        'data: {"type":"text-delta","id":"t","delta":"h\u00e9"}\rid: 3\r\r'
        "id: 4\n\ndata: [DONE]\n\n"
    ).encode()
    whole = parse_frames(raw.decode())
    assert [f.id for f in whole] == ["1", "2", "3", "4", None] and whole[-1].done
    for size in (1, 2, 3, 7):
        decoder = SSEDecoder()
        frames = [f for i in range(0, len(raw), size) for f in decoder.feed(raw[i : i + size])]
        assert frames == whole
        assert decoder.comments == 1


def test_resume_cursor_counts_the_reopening_prefix() -> None:
    cursor = ResumeCursor()
    assert cursor.connect() is None
    first = parse_frames(
        'data: {"type":"start"}\n\ndata: {"type":"start-step"}\n\n'
        'data: {"type":"text-start","id":"t"}\n\nid: 3\ndata: {"type":"text-delta","id":"t",'
        '"delta":"a"}\n\ndata: {"type":"text-end","id":"t"}\n\n'
    )
    assert all(cursor.accept(f) is not None for f in first)
    assert cursor.connect() == "3"
    # the server re-opens (start, start-step, text-start), then repeats the cut event's start
    again = parse_frames(
        'data: {"type":"start"}\n\ndata: {"type":"start-step"}\n\n'
        'data: {"type":"text-start","id":"t"}\n\ndata: {"type":"text-end","id":"t"}\n\n'
        'id: 4\ndata: {"type":"data-x","data":1}\n\n'
    )
    delivered = [p for f in again if (p := cursor.accept(f)) is not None]
    assert [p.type for p in delivered] == ["data-x"] and delivered[0].seq == 4

"""The Python client's process side against a real API process: definitions, instances,
the worklist, completing work items, and the process stream resumed across dropped
connections without losing or repeating a history line."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from processgpt.client import ApiError, ProcessGPTClient
from processgpt.domain.process.state import InstanceStatus
from processgpt.domain.task import TaskStatus
from tests.api import conftest as api_fixtures
from tests.api.conftest import Api
from tests.api.test_process_instances_api import FORMS, purchase
from tests.client.test_http_client import FAST, DroppingTransport

api = api_fixtures.api  # the real API + workers fixture of tests/api


async def _publish(pg: ProcessGPTClient) -> None:
    published = await pg.publish_process_definition("purchase", definition=purchase(), forms=FORMS)
    assert published.version == 1
    assert (await pg.get_process_definition("purchase")).latest_version == 1


async def test_a_process_over_the_client(api: Api) -> None:
    async with ProcessGPTClient(api.url, api.key_a, reconnect=FAST) as pg:
        await _publish(pg)
        view = await pg.start_instance(
            "purchase", variables={"note": "x"}, roles={"manager": "lee"}, idempotency_key="p"
        )
        assert (await pg.start_instance("purchase", idempotency_key="p")).id == view.id
        assert view.status is InstanceStatus.RUNNING and view.current_activity_ids == ["request"]
        items = [t async for t in pg.worklist(role="clerk")]
        assert [t.id for t in items] == [view.open_tasks[0].id]
        done = await pg.complete_task(items[0].id, {"request_form": {"amount": 2}})
        assert done.status is TaskStatus.DONE
        with pytest.raises(ApiError) as refused:
            await pg.complete_task(items[0].id, {})
        assert (refused.value.status, refused.value.code) == (409, "invalid_state")
        (approve,) = [t async for t in pg.worklist(user="lee")]
        await pg.complete_task(
            approve.id, {"approval_form": {"decision": "approve"}}, idempotency_key="k"
        )
        again = await pg.complete_task(approve.id, {}, idempotency_key="k")
        assert again.id == approve.id and again.status is TaskStatus.DONE
        assert (await pg.incidents(view.id)) == []
        ended = await pg.send_message(view.id, "payment", {"ref": 1})
        assert ended.status is InstanceStatus.COMPLETED and ended.variables["ref"] == 1
        lines = (await pg.history(view.id)).items
        assert lines[0].kind == "instance_started" and lines[-1].kind == "instance_completed"
        assert [i.id async for i in pg.list_processes(proc_def_id="purchase")] == [view.id]
        assert [i.id async for i in pg.list_processes(status="RUNNING")] == []

        second = await pg.start_instance("purchase")
        cancelled = await pg.cancel_process(second.id, "no")
        assert cancelled.status is InstanceStatus.CANCELLED
        with pytest.raises(ApiError) as missing:
            await pg.migrate_process(second.id, 5)
        assert missing.value.code in ("definition_not_found", "invalid_state")
        with pytest.raises(ApiError) as unknown:
            await pg.start_instance("nothing")
        assert (unknown.value.status, unknown.value.code) == (404, "definition_not_found")


async def test_the_process_stream_resumes_without_losing_history(api: Api) -> None:
    transport = DroppingTransport([400, 900, 1500, 2600])
    async with (
        ProcessGPTClient(api.url, api.key_a, reconnect=FAST) as pg,
        ProcessGPTClient(api.url, api.key_a, reconnect=FAST, transport=transport) as reader,
    ):
        await _publish(pg)
        view = await pg.start_instance("purchase")

        async def read() -> list[Any]:
            return [part async for part in reader.stream_process(view.id)]

        streaming = asyncio.create_task(read())
        for output in ({"request_form": {"amount": 1}}, {"approval_form": {"decision": "reject"}}):
            (task,) = (await pg.get_process(view.id)).open_tasks
            await pg.complete_task(task.id, output)
            await asyncio.sleep(0.2)
        received = await asyncio.wait_for(streaming, 60)
        lines = (await pg.history(view.id)).items
    history = [p.data["seq"] for p in received if p.type == "data-process_event"]
    assert history == [line.seq for line in lines]  # each once, in order, across the drops
    assert len(transport.stream_requests) > 1  # it did reconnect
    assert [p.type for p in received].count("start") == 1
    assert received[-1].type == "finish"

"""Tracing of process work: what starts an instance (a POST /v1/processes request, a
schedule's tick) stores its W3C trace context with the instance, and the runs of the
instance's tasks — and of its sub-processes' tasks — link to it. A real API process, an
in-process worker with an in-memory span exporter, the schedule loop on the real database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from processgpt import tracing
from processgpt.db.database import Database
from processgpt.db.schedules import ScheduleRepository
from processgpt.db.tasks import TaskRepository
from processgpt.db.tenants import TenantRepository
from processgpt.db.worker_queries import WorkerQueries
from processgpt.domain.process.model import Flow, Node, NodeKind, ProcessGraph
from processgpt.domain.schedule import Cadence, ScheduleSpec
from processgpt.runtime.process_service import ProcessService
from processgpt.runtime.schedules import ScheduleLoop
from tests.api.conftest import Api
from tests.conftest import StartWorker
from tests.runtime.process_support import StepExecutor, agent_task, publish
from tests.support import wait_until

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter)
    yield exporter
    tracing.shutdown()


def two_steps() -> ProcessGraph:
    nodes = (
        Node("start", NodeKind.START),
        agent_task("one"),
        agent_task("two"),
        Node("end", NodeKind.END),
    )
    flows = (Flow("f1", "start", "one"), Flow("f2", "one", "two"), Flow("f3", "two", "end"))
    return ProcessGraph(id="pair", nodes=nodes, flows=flows)


def runs(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == "task.run"]


def linked_to(span: ReadableSpan) -> tuple[str, str]:
    [link] = span.links
    return format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")


async def test_every_step_of_an_instance_links_to_the_request_that_started_it(
    spans: InMemorySpanExporter, api: Api, db: Database, start_worker: StartWorker
) -> None:
    await publish(db, two_steps(), tenant="acme")
    await start_worker({"stub": StepExecutor()}, lease_seconds=60)
    async with api.client() as client:
        started = await client.post(
            "/v1/processes",
            json={"proc_def_id": "pair", "variables": {"n": 2}},
            headers={"traceparent": CALLER, "tracestate": "vendor=1"},
        )
        assert started.status_code == 201, started.text
    instance = uuid.UUID(started.json()["process"]["proc_inst_id"])
    assert started.json()["process"]["traceparent"] == CALLER
    # The API process does not trace: the caller's context is stored as it came.
    row = await db.fetchrow(
        "SELECT traceparent, tracestate FROM bpm_proc_inst WHERE proc_inst_id = $1", instance
    )
    assert dict(row) == {"traceparent": CALLER, "tracestate": "vendor=1"}

    async def completed() -> bool:
        status = await db.fetchval(
            "SELECT status FROM bpm_proc_inst WHERE proc_inst_id = $1", instance
        )
        return status == "COMPLETED"

    await wait_until(completed, 120)
    finished = runs(spans)
    assert len(finished) == 2
    assert {str(s.attributes["processgpt.instance_id"]) for s in finished if s.attributes} == {
        str(instance)
    }
    for run in finished:
        assert run.parent is None  # each run is a trace of its own ...
        assert linked_to(run) == (CALLER_TRACE, "00f067aa0ba902b7")  # ... linked to the start
    # the tasks themselves carry no context: the link comes from the instance
    assert (
        await db.fetchval(
            "SELECT count(*) FROM todolist WHERE proc_inst_id = $1 AND traceparent IS NULL",
            instance,
        )
        == 2
    )


async def test_a_one_task_process_stores_the_context_on_its_task(api: Api, db: Database) -> None:
    async with api.client() as client:
        started = await client.post(
            "/v1/processes",
            json={"task": {"agent_orch": "demo", "query": "x"}},
            headers={"traceparent": CALLER},
        )
        assert started.status_code == 201, started.text
    [task] = started.json()["tasks"]
    assert task["traceparent"] == CALLER


async def test_a_schedule_tick_is_a_trace_its_work_links_to(
    spans: InMemorySpanExporter, db: Database
) -> None:
    await TenantRepository(db).ensure("acme")
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo') ON CONFLICT DO NOTHING")
    await publish(db, two_steps(), tenant="acme")
    schedules = ScheduleRepository(db)
    every_minute = Cadence(cron="* * * * *")
    task_tick = await schedules.create(
        "acme", ScheduleSpec("t", every_minute, "task", task={"agent_orch": "demo"})
    )
    process_tick = await schedules.create(
        "acme", ScheduleSpec("p", every_minute, "process", proc_def_id="pair")
    )
    await db.execute("UPDATE schedules SET next_run_at = now() - interval '1 second'")
    loop = ScheduleLoop(schedules, TaskRepository(db), ProcessService(db))
    assert await loop.fire_due() == 2

    ticks = {
        str(s.attributes["processgpt.schedule_id"]): s
        for s in spans.get_finished_spans()
        if s.name == "schedule.tick" and s.attributes
    }
    assert set(ticks) == {str(task_tick.id), str(process_tick.id)}
    assert all(s.parent is None for s in ticks.values())

    def context_of(span: ReadableSpan) -> str:
        return f"{span.context.trace_id:032x}-{span.context.span_id:016x}"

    stored_task = await db.fetchval(
        "SELECT traceparent FROM todolist WHERE proc_inst_id IS NULL AND agent_orch = 'demo'"
    )
    assert stored_task[3:52] == context_of(ticks[str(task_tick.id)])
    stored_instance = await db.fetchval("SELECT traceparent FROM bpm_proc_inst")
    assert stored_instance[3:52] == context_of(ticks[str(process_tick.id)])


async def test_a_sub_process_task_links_to_its_nearest_traced_ancestor(db: Database) -> None:
    async def instance(parent: uuid.UUID | None, traceparent: str | None) -> uuid.UUID:
        found = await db.fetchval(
            "INSERT INTO bpm_proc_inst (tenant_id, proc_def_id, status, parent_proc_inst_id, "
            "parent_node_id, parent_activation, traceparent) VALUES ('default', 'p', 'RUNNING', "
            "$1, CASE WHEN $1::uuid IS NOT NULL THEN 'call' END, "
            "CASE WHEN $1::uuid IS NOT NULL THEN 1 END, $2) RETURNING proc_inst_id",
            parent,
            traceparent,
        )
        assert isinstance(found, uuid.UUID)
        return found

    root = await instance(None, CALLER)
    child = await instance(root, None)
    grandchild = await instance(child, None)
    untraced = await instance(None, None)
    queries = WorkerQueries(db)
    assert await queries.instance_trace_context(grandchild) == (CALLER, None)
    assert await queries.instance_trace_context(child) == (CALLER, None)
    assert await queries.instance_trace_context(untraced) == (None, None)
    assert await queries.instance_trace_context(uuid.uuid4()) == (None, None)

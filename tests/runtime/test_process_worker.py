"""Processes advanced by a real in-process worker: agent steps whose final write commits with
the process step, drafts, failures that become incidents, judge tasks for text conditions."""

from __future__ import annotations

import uuid

from processgpt.db.database import Database
from processgpt.db.process_steps import StepSettings
from processgpt.domain.process.model import (
    Activity,
    AgentMode,
    Node,
    NodeKind,
    Role,
    TaskType,
    TimerSpec,
)
from processgpt.domain.process.state import IncidentKind, InstanceStatus
from processgpt.runtime.process_service import ProcessService
from tests.conftest import StartWorker
from tests.domain.process.builders import build, flow
from tests.runtime.process_support import (
    JudgeExecutor,
    StepExecutor,
    agent_task,
    human_task,
    open_task,
    publish,
    tasks_of,
)
from tests.support import wait_until


async def wait_status(
    service: ProcessService, instance_id: uuid.UUID, status: InstanceStatus, timeout: float = 20
) -> None:
    async def reached() -> bool:
        return (await service.get("default", instance_id)).status is status

    await wait_until(reached, timeout)


async def wait_open(db: Database, instance_id: uuid.UUID, activity_id: str) -> dict:
    async def found() -> dict | None:
        rows = await db.fetch(
            "SELECT * FROM todolist WHERE proc_inst_id = $1 AND activity_id = $2 "
            "AND status = 'TODO'",
            instance_id,
            activity_id,
        )
        return dict(rows[0]) if rows else None

    return await wait_until(found, 20)


async def test_agent_step_then_human_step_completes_in_order(
    db: Database, start_worker: StartWorker
) -> None:
    graph = build(
        "s>a a>h h>e",
        nodes=[
            agent_task("a", instruction="double it", input_data=("n",)),
            human_task("h", output_data=("approved",)),
        ],
        gid="mixed",
    )
    await publish(db, graph)
    executor = StepExecutor()
    await start_worker({"stub": executor})
    service = ProcessService(db)
    inst, _ = await service.start("default", "mixed", variables={"n": 21, "other": "x"})
    a = (await tasks_of(db, inst.id))[0]
    assert a["status"] in ("PENDING", "IN_PROGRESS", "DONE") and a["agent_orch"] == "stub"
    assert a["query"] == "double it" and a["input"] == {"n": 21} and a["activation"] == 1
    h = await wait_open(db, inst.id, "h")
    inst = await service.get("default", inst.id)
    assert inst.variables["doubled"] == 42 and inst.variables["seen"] == "double it"
    assert inst.current_activity_ids == ["h"]
    await service.complete_task("default", h["id"], {"approved": True})
    inst = await service.get("default", inst.id)
    assert inst.status is InstanceStatus.COMPLETED and inst.variables["approved"] is True
    kinds = [(ln.kind, ln.node_id) for ln in await service.history("default", inst.id)]
    order = [
        ("instance_started", "s"),
        ("step_started", "a"),
        ("step_completed", "a"),
        ("step_started", "h"),
        ("step_completed", "h"),
        ("instance_completed", None),
    ]
    positions = [kinds.index(k) for k in order]
    assert positions == sorted(positions)


async def test_draft_step_goes_to_its_person_with_the_agents_draft(
    db: Database, start_worker: StartWorker
) -> None:
    node = Node(
        id="d",
        kind=NodeKind.TASK,
        name="draft it",
        activity=Activity(
            task_type=TaskType.USER, role="clerk", agent="stub", agent_mode=AgentMode.DRAFT
        ),
    )
    await publish(db, build("s>d d>e", nodes=[node], gid="drafting", roles=[Role("clerk")]))
    await start_worker({"stub": StepExecutor()})
    service = ProcessService(db)
    inst, _ = await service.start("default", "drafting", variables={"n": 2}, roles={"clerk": "ann"})
    d = await wait_open(db, inst.id, "d")
    assert d["draft"]["doubled"] == 4 and d["output"] is None and d["user_id"] == "ann"
    assert (await service.get("default", inst.id)).status is InstanceStatus.RUNNING
    assert [t.id for t in await service.worklist("default", user="ann")] == [d["id"]]
    await service.complete_task("default", d["id"], {"doubled": 5})
    inst = await service.get("default", inst.id)
    assert inst.status is InstanceStatus.COMPLETED and inst.variables["doubled"] == 5


async def test_agent_step_exhausting_attempts_is_an_incident_and_resolving_retries_it(
    db: Database, start_worker: StartWorker
) -> None:
    await publish(db, build("s>a a>e", nodes=[agent_task("a", agent="flaky")], gid="failing"))
    flaky = StepExecutor(fail=True)
    await start_worker({"flaky": flaky})
    service = ProcessService(db)
    inst, _ = await service.start("default", "failing", variables={"n": 1})
    await wait_status(service, inst.id, InstanceStatus.INCIDENT)
    inst = await service.get("default", inst.id)
    [incident] = inst.incidents
    assert incident.kind is IncidentKind.TASK_FAILED and incident.node_id == "a"
    assert "failed on purpose" in incident.reason
    flaky.fail = False
    inst = await service.resolve_incident("default", inst.id, incident.id)
    assert inst.status is InstanceStatus.RUNNING
    await wait_status(service, inst.id, InstanceStatus.COMPLETED)
    rows = await tasks_of(db, inst.id)
    assert [(r["activation"], r["status"]) for r in rows] == [(1, "FAILED"), (2, "DONE")]


async def test_text_condition_is_judged_by_the_judge_agent(
    db: Database, start_worker: StartWorker
) -> None:
    graph = build(
        [
            flow("s", "h"),
            flow("h", "x"),
            flow("x", "yes", "when urgent", fid="f_urgent", mode="text", priority=1),
            flow("x", "no", fid="f_default"),
            flow("yes", "e1"),
            flow("no", "e2"),
        ],
        nodes=[human_task("h")],
        defaults={"x": "f_default"},
        gid="judged",
    )
    await publish(db, graph)
    judge = JudgeExecutor()
    await start_worker({"judge": judge}, process_steps=_steps("judge"))
    service = ProcessService(db, judge_agent="judge")
    inst, _ = await service.start("default", "judged")
    h = await open_task(db, inst.id, "h")
    await service.complete_task("default", h["id"], {"urgent": True})
    yes = await wait_open(db, inst.id, "yes")
    assert yes["activation"] == 1 and judge.runs == 1
    lines = await service.history("default", inst.id)
    [decision] = [ln for ln in lines if ln.kind == "gateway_decision"]
    assert "judged when urgent" in str(decision.data)
    rows = await tasks_of(db, inst.id)
    judge_rows = [r for r in rows if r["step_event"] is not None]
    assert len(judge_rows) == 1 and judge_rows[0]["status"] == "DONE"


async def test_bad_judge_output_opens_an_incident_at_the_gateway_and_resolving_asks_again(
    db: Database, start_worker: StartWorker
) -> None:
    graph = build(
        [
            flow("s", "h"),
            flow("h", "x"),
            flow("x", "yes", "when urgent", fid="f_urgent", mode="text"),
            flow("x", "no", fid="f_default"),
            flow("yes", "e1"),
            flow("no", "e2"),
        ],
        nodes=[human_task("h")],
        defaults={"x": "f_default"},
        gid="badjudge",
    )
    await publish(db, graph)
    judge = JudgeExecutor(raw={"answer": "maybe"})
    await start_worker({"judge": judge}, process_steps=_steps("judge"))
    service = ProcessService(db, judge_agent="judge")
    inst, _ = await service.start("default", "badjudge")
    h = await open_task(db, inst.id, "h")
    await service.complete_task("default", h["id"], {"urgent": True})
    await wait_status(service, inst.id, InstanceStatus.INCIDENT)
    rows = await tasks_of(db, inst.id)
    [judged] = [r for r in rows if r["step_event"] is not None]
    assert judged["status"] == "FAILED" and judged["error"]["code"] == "bad_verdicts"
    # The person's step stays done (their form is kept); the gateway waits on an incident.
    assert [(r["activity_id"], r["status"]) for r in rows if r["step_event"] is None] == [
        ("h", "DONE")
    ]
    got = await service.get("default", inst.id)
    [incident] = got.incidents
    assert incident.kind is IncidentKind.CONDITION and incident.node_id == "x"
    assert "could not be judged" in incident.reason
    judge.raw = None  # the judge answers properly from now on
    await service.resolve_incident("default", inst.id, incident.id)
    yes = await wait_open(db, inst.id, "yes")
    assert yes["activation"] == 1 and judge.runs == 2


async def test_a_judge_that_fails_on_a_start_event_opens_an_incident(
    db: Database, start_worker: StartWorker
) -> None:
    # The start event leads straight to a text condition: the event waiting for the judge
    # is the start itself, not a task's completion.
    graph = build(
        [
            flow("s", "x"),
            flow("x", "yes", "when urgent", fid="f_urgent", mode="text"),
            flow("x", "no", fid="f_default"),
            flow("yes", "e1"),
            flow("no", "e2"),
        ],
        defaults={"x": "f_default"},
        gid="startjudge",
    )
    await publish(db, graph)
    judge = JudgeExecutor(raw={"answer": "maybe"})
    await start_worker({"judge": judge}, process_steps=_steps("judge"))
    service = ProcessService(db, judge_agent="judge")
    inst, _ = await service.start("default", "startjudge", variables={"urgent": True})
    await wait_status(service, inst.id, InstanceStatus.INCIDENT)
    [incident] = (await service.get("default", inst.id)).incidents
    assert incident.kind is IncidentKind.CONDITION and incident.node_id == "x"
    judge.raw = None
    await service.resolve_incident("default", inst.id, incident.id)
    await wait_open(db, inst.id, "yes")


def _steps(judge: str) -> StepSettings:
    return StepSettings(judge_agent=judge)


async def test_the_workers_timer_loop_fires_a_timer_when_due(
    db: Database, start_worker: StartWorker
) -> None:
    graph = build(
        "s>t t>a a>e",
        nodes=[Node(id="t", kind=NodeKind.TIMER, name="t", timer=TimerSpec(duration="PT1S"))],
        gid="timed",
    )
    await publish(db, graph)
    worker = await start_worker({"stub": StepExecutor()})
    service = ProcessService(db)
    inst, _ = await service.start("default", "timed")
    assert inst.current_activity_ids == ["t"]
    await wait_open(db, inst.id, "a")
    assert worker.timers is not None and worker.timers.fired == 1
    assert await db.fetchval("SELECT count(*) FROM process_timers") == 0
    kinds = [ln.kind for ln in await service.history("default", inst.id)]
    assert kinds.count("timer_fired") == 1


async def test_a_step_whose_lease_expires_on_its_last_attempt_is_an_incident(
    db: Database, start_worker: StartWorker
) -> None:
    await publish(db, build("s>a a>e", nodes=[agent_task("a", agent="lost")], gid="lost"))
    service = ProcessService(db)
    inst, _ = await service.start("default", "lost")
    # A worker that claimed the step on its last attempt and vanished.
    await db.execute(
        "UPDATE todolist SET status = 'IN_PROGRESS', consumer = 'gone', attempts = max_attempts,"
        " lease_until = now() - interval '1 second', fence = fence + 1 WHERE proc_inst_id = $1",
        inst.id,
    )
    await start_worker({"other": StepExecutor()})
    await wait_status(service, inst.id, InstanceStatus.INCIDENT)
    [incident] = (await service.get("default", inst.id)).incidents
    assert incident.node_id == "a" and "lease" in incident.reason


async def test_a_step_that_cannot_be_applied_does_not_hold_up_the_batch(
    db: Database, start_worker: StartWorker
) -> None:
    await publish(db, build("s>a a>e", nodes=[agent_task("a", agent="slowish")], gid="broken"))
    service = ProcessService(db)
    broken, _ = await service.start("default", "broken")
    healthy, _ = await service.start("default", "broken")
    await db.execute(
        'UPDATE bpm_proc_inst SET state = \'{"status": "BOGUS"}\' WHERE proc_inst_id = $1',
        broken.id,
    )
    await start_worker({"slowish": StepExecutor()})
    await wait_status(service, healthy.id, InstanceStatus.COMPLETED)

    async def marked() -> bool:
        row = await db.fetchrow(
            "SELECT status, error FROM todolist WHERE proc_inst_id = $1", broken.id
        )
        return row["status"] == "DONE" and (row["error"] or {}).get("code") == "process_step_failed"

    await wait_until(marked, 20)


async def test_two_workers_complete_parallel_agent_branches_and_each_join_fires_once(
    db: Database, start_worker: StartWorker
) -> None:
    graph = build(
        "s>p1 p1>a p1>b p1>c p1>d a>p2 b>p2 c>p2 d>p2 p2>z z>e",
        nodes=[agent_task(n) for n in "abcdz"],
        gid="fanout",
    )
    await publish(db, graph)
    service = ProcessService(db)
    ids = [(await service.start("default", "fanout", variables={"n": i}))[0].id for i in range(30)]
    await start_worker({"stub": StepExecutor()}, concurrency=8)
    await start_worker({"stub": StepExecutor()}, concurrency=8)

    async def all_done() -> bool:
        return bool(
            await db.fetchval(
                "SELECT bool_and(status = 'COMPLETED') FROM bpm_proc_inst WHERE proc_def_id = $1",
                "fanout",
            )
        )

    await wait_until(all_done, 60)
    rows = await db.fetch(
        "SELECT proc_inst_id, activity_id, count(*) AS n FROM todolist "
        "WHERE proc_inst_id = ANY($1::uuid[]) GROUP BY 1, 2",
        ids,
    )
    assert len(rows) == 30 * 5 and all(r["n"] == 1 for r in rows)
    joins = await db.fetchval(
        "SELECT count(*) FROM process_history WHERE kind = 'join_fired' "
        "AND proc_inst_id = ANY($1::uuid[])",
        ids,
    )
    assert joins == 30

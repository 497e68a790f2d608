"""Process instances advanced by the service's transactions (human steps, gateways, cancel,
messages, incidents, migration, forms)."""

from __future__ import annotations

import pytest

from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.errors import InvalidInput, InvalidTransition, ProcessNotFound
from processgpt.domain.process.model import BoundaryTimer, Node, NodeKind, Role, TimerSpec
from processgpt.domain.process.publish import FormSpec
from processgpt.domain.process.state import InstanceStatus
from processgpt.domain.task import TaskStatus
from processgpt.runtime.process_service import ProcessService
from tests.domain.process.builders import build
from tests.runtime.process_support import agent_task, human_task, open_task, publish, tasks_of


async def test_human_sequence_runs_to_completion_with_history(db: Database) -> None:
    graph = build(
        "s>a a>b b>e",
        nodes=[human_task("a", role="clerk"), human_task("b", output_data=("ok",))],
        gid="seq",
        roles=[Role("clerk", "clerk@example.com")],
    )
    await publish(db, graph)
    service = ProcessService(db)
    inst, created = await service.start("default", "seq", variables={"n": 1})
    assert created
    assert inst.status is InstanceStatus.RUNNING
    assert inst.current_activity_ids == ["a"]
    a = await open_task(db, inst.id, "a")
    assert a["status"] == "TODO" and a["user_id"] == "clerk@example.com" and a["role"] == "clerk"
    assert a["agent_orch"] == "human" and a["activation"] == 1
    worklist = await service.worklist("default", user="clerk@example.com")
    assert [t.id for t in worklist] == [a["id"]]
    done = await service.complete_task("default", a["id"], {"x": 2})
    assert done.status is TaskStatus.DONE
    inst = await service.get("default", inst.id)
    assert inst.current_activity_ids == ["b"]
    assert inst.variables == {"n": 1, "x": 2}
    b = await open_task(db, inst.id, "b")
    await service.complete_task("default", b["id"], {"ok": True, "ignored": 1})
    inst = await service.get("default", inst.id)
    assert inst.status is InstanceStatus.COMPLETED
    assert inst.end_date is not None
    assert inst.variables == {"n": 1, "x": 2, "ok": True}
    lines = await service.history("default", inst.id)
    assert [ln.seq for ln in lines] == list(range(1, len(lines) + 1))
    kinds = [(ln.kind, ln.node_id) for ln in lines]
    assert kinds[0] == ("instance_started", "s")
    assert ("step_started", "a") in kinds and ("step_completed", "b") in kinds
    assert kinds[-1][0] == "instance_completed"
    assert await service.history("default", inst.id, after_seq=len(lines)) == []


async def test_start_is_idempotent_by_key_and_tenant_scoped(db: Database) -> None:
    await publish(db, build("s>a a>e", gid="one"))
    service = ProcessService(db)
    first, created = await service.start("default", "one", idempotency_key="k1")
    again, created_again = await service.start("default", "one", idempotency_key="k1")
    assert created and not created_again and again.id == first.id
    assert len(await tasks_of(db, first.id)) == 1
    with pytest.raises(ProcessNotFound):
        await service.get("other", first.id)


async def test_complete_task_not_todo_is_409_and_same_key_is_same_result(db: Database) -> None:
    await publish(db, build("s>a a>b b>e", gid="two"))
    service = ProcessService(db)
    inst, _ = await service.start("default", "two")
    a = await open_task(db, inst.id, "a")
    first = await service.complete_task("default", a["id"], {"v": 1}, idempotency_key="c1")
    second = await service.complete_task("default", a["id"], {"v": 1}, idempotency_key="c1")
    assert second.id == first.id and second.status is TaskStatus.DONE
    with pytest.raises(InvalidTransition):
        await service.complete_task("default", a["id"], {"v": 1})
    with pytest.raises(InvalidTransition):
        await service.complete_task("default", a["id"], {"v": 1}, idempotency_key="other")
    assert len(await tasks_of(db, inst.id)) == 2


async def test_bad_form_data_is_422_and_changes_nothing(db: Database) -> None:
    graph = build(
        "s>f f>e",
        nodes=[human_task("f", tool="formHandler:leave", form_id="leave")],
        gid="formed",
    )
    fields = [
        {"key": "days", "text": "Days", "type": "number"},
        {"key": "kind", "type": "select", "options": ["sick", "holiday"]},
    ]
    await publish(db, graph, forms={"leave": FormSpec(fields=fields)})
    service = ProcessService(db)
    inst, _ = await service.start("default", "formed")
    f = await open_task(db, inst.id, "f")
    before = await tasks_of(db, inst.id)
    for bad in ({"days": "three"}, {"kind": "party"}, {"unknown": 1}, {"leave": {"days": True}}):
        with pytest.raises(InvalidInput):
            await service.complete_task("default", f["id"], bad)
    assert await tasks_of(db, inst.id) == before
    await service.complete_task("default", f["id"], {"leave": {"days": 3, "kind": "sick"}})
    inst = await service.get("default", inst.id)
    assert inst.status is InstanceStatus.COMPLETED
    assert inst.variables["days"] == 3 and inst.variables["leave"] == {"days": 3, "kind": "sick"}


async def test_exclusive_gateway_without_a_match_is_an_incident_resolved_by_fixing_variables(
    db: Database,
) -> None:
    graph = build(
        "s>x x>big:amount > 100 x>small:amount < 10 big>e1 small>e2",
        nodes=[human_task("big"), human_task("small")],
        variables=["amount"],
        gid="routing",
    )
    await publish(db, graph)
    service = ProcessService(db)
    inst, _ = await service.start("default", "routing", variables={"amount": 50})
    assert inst.status is InstanceStatus.INCIDENT
    [incident] = inst.incidents
    assert incident.node_id == "x"
    with pytest.raises(InvalidTransition):
        await service.resolve_incident("default", inst.id, "no-such-incident")
    inst = await service.resolve_incident(
        "default", inst.id, incident.id, variables={"amount": 500}
    )
    assert inst.status is InstanceStatus.RUNNING and inst.current_activity_ids == ["big"]
    kinds = [ln.kind for ln in await service.history("default", inst.id)]
    assert "incident" in kinds and "incident_resolved" in kinds


async def test_cancel_cancels_open_tasks_and_timers_in_one_step(db: Database) -> None:
    timed = Node(
        **{
            **human_task("a").__dict__,
            "boundary": (BoundaryTimer("late", TimerSpec(duration="P1D")),),
        }
    )
    graph = build(
        "s>p1 p1>a p1>b a>p2 b>p2 p2>e late>e2", nodes=[timed, human_task("b")], gid="cancels"
    )
    await publish(db, graph)
    service = ProcessService(db)
    inst, _ = await service.start("default", "cancels")
    assert await db.fetchval("SELECT count(*) FROM process_timers") == 1
    inst = await service.cancel("default", inst.id, "no longer needed")
    assert inst.status is InstanceStatus.CANCELLED and inst.end_date is not None
    rows = await tasks_of(db, inst.id)
    assert [r["status"] for r in rows] == ["CANCELLED", "CANCELLED"]
    assert all(r["fence"] == 1 and r["finished_at"] is not None for r in rows)
    assert await db.fetchval("SELECT count(*) FROM process_timers") == 0
    events = await db.fetch("SELECT data FROM events WHERE event_type = 'task_cancelled'")
    assert [e["data"]["reason"] for e in events] == ["no longer needed"] * 2
    with pytest.raises(InvalidTransition):
        await service.cancel("default", inst.id)
    with pytest.raises(InvalidTransition):
        await service.complete_task("default", rows[0]["id"], {})


async def test_messages_reach_a_waiting_catch_event(db: Database) -> None:
    graph = build(
        "s>m m>a a>e",
        nodes=[Node(id="m", kind=NodeKind.MESSAGE, name="m", event_name="paid")],
        gid="messages",
    )
    await publish(db, graph)
    service = ProcessService(db)
    inst, _ = await service.start("default", "messages")
    assert inst.current_activity_ids == ["m"]
    with pytest.raises(InvalidTransition):
        await service.send_message("default", inst.id, "other", {})
    inst = await service.send_message("default", inst.id, "paid", {"amount": 7})
    assert inst.current_activity_ids == ["a"] and inst.variables == {"amount": 7}


async def test_v2_does_not_change_v1_instances_and_migration_moves_a_waiting_step(
    db: Database,
) -> None:
    v1 = build("s>a a>b b>e", gid="versioned")
    assert await publish(db, v1) == 1
    service = ProcessService(db)
    old, _ = await service.start("default", "versioned")
    waiting_at_b, _ = await service.start("default", "versioned")
    await service.complete_task("default", (await open_task(db, waiting_at_b.id, "a"))["id"], {})
    v2 = build("s>a a>c c>e", gid="versioned")
    assert await publish(db, v2) == 2
    new, _ = await service.start("default", "versioned")
    assert new.version == 2 and old.version == 1
    await service.complete_task("default", (await open_task(db, old.id, "a"))["id"], {})
    assert (await service.get("default", old.id)).current_activity_ids == ["b"]
    await service.complete_task("default", (await open_task(db, new.id, "a"))["id"], {})
    assert (await service.get("default", new.id)).current_activity_ids == ["c"]
    with pytest.raises(InvalidInput):  # b is not in v2: the mapping must place it
        await service.migrate("default", waiting_at_b.id, to_version=2, mapping={})
    assert (await service.get("default", waiting_at_b.id)).version == 1
    b_task = await open_task(db, waiting_at_b.id, "b")
    moved = await service.migrate("default", waiting_at_b.id, to_version=2, mapping={"b": "c"})
    assert moved.version == 2 and moved.current_activity_ids == ["c"]
    assert (await db.fetchval("SELECT status FROM todolist WHERE id = $1", b_task["id"])) == (
        "CANCELLED"
    )
    lines = await service.history("default", moved.id)
    [migrated] = [ln for ln in lines if ln.kind == "migrated"]
    assert migrated.data["mapping"] == {"b": "c"}
    await service.complete_task("default", (await open_task(db, moved.id, "c"))["id"], {})
    assert (await service.get("default", moved.id)).status is InstanceStatus.COMPLETED


async def test_call_activity_and_embedded_subprocess_run_as_children(db: Database) -> None:
    await publish(db, build("s>k k>e", gid="child_def"))
    inner = build("s2>q q>e2", gid="inner")
    graph = build(
        "s>call call>sub sub>e",
        nodes=[
            Node(id="call", kind=NodeKind.CALL, name="call", called="child_def"),
            Node(id="sub", kind=NodeKind.SUBPROCESS, name="sub", subprocess=inner),
        ],
        gid="parent_def",
    )
    await publish(db, graph)
    service = ProcessService(db)
    parent, _ = await service.start("default", "parent_def", variables={"p": 1})
    assert parent.current_activity_ids == ["call"]
    [child] = [i for i in await service.list("default") if i.parent_id == parent.id]
    assert child.proc_def_id == "child_def" and child.variables == {"p": 1}
    await service.complete_task("default", (await open_task(db, child.id, "k"))["id"], {"c": 2})
    assert (await service.get("default", child.id)).status is InstanceStatus.COMPLETED
    parent = await service.get("default", parent.id)
    assert parent.current_activity_ids == ["sub"] and parent.variables == {"p": 1, "c": 2}
    [sub] = [
        i for i in await service.list("default") if i.parent_id == parent.id and i.id != child.id
    ]
    assert sub.proc_def_id == "parent_def"
    q = await open_task(db, sub.id, "q")
    cancelled = await service.cancel("default", parent.id, "stop all")
    assert cancelled.status is InstanceStatus.CANCELLED
    assert (await service.get("default", sub.id)).status is InstanceStatus.CANCELLED
    assert await db.fetchval("SELECT status FROM todolist WHERE id = $1", q["id"]) == "CANCELLED"


async def test_a_childs_incident_shows_on_its_parent(db: Database) -> None:
    await publish(
        db,
        build(
            "s>x x>k:flag == true x>j:flag == false k>e j>e2",
            nodes=[human_task("k"), human_task("j")],
            variables=["flag"],
            gid="kid",
        ),
    )
    graph = build(
        "s>call call>e",
        nodes=[Node(id="call", kind=NodeKind.CALL, name="call", called="kid")],
        gid="mom",
    )
    await publish(db, graph)
    service = ProcessService(db)
    parent, _ = await service.start("default", "mom", variables={"flag": "neither"})
    parent = await service.get("default", parent.id)
    assert parent.status is InstanceStatus.RUNNING and parent.incidents == []
    [shown] = parent.child_incidents
    child = await service.get("default", shown.child_id)
    assert child.status is InstanceStatus.INCIDENT and child.parent_id == parent.id
    await service.resolve_incident("default", child.id, shown.incident.id, variables={"flag": True})
    assert (await service.get("default", parent.id)).child_incidents == []


async def test_list_filters_and_pages_newest_first(db: Database) -> None:
    await publish(db, build("s>a a>e", gid="listed"))
    await publish(db, build("s>a a>e", gid="other_def"))
    service = ProcessService(db)
    ids = [(await service.start("default", "listed"))[0].id for _ in range(5)]
    await service.start("default", "other_def")
    await service.cancel("default", ids[0])
    page = await service.list("default", proc_def_id="listed", limit=3)
    assert [i.id for i in page] == ids[::-1][:3]
    rest = await service.list(
        "default", proc_def_id="listed", limit=3, before=(page[-1].start_date, page[-1].id)
    )
    assert [i.id for i in rest] == ids[::-1][3:]
    cancelled = await service.list("default", status=InstanceStatus.CANCELLED)
    assert [i.id for i in cancelled] == [ids[0]]
    assert await service.list("other") == []


async def test_a_process_step_is_not_cancelled_or_requeued_as_a_lone_task(db: Database) -> None:
    await publish(db, build("s>a a>e", nodes=[agent_task("a")], gid="lone"))
    service = ProcessService(db)
    inst, _ = await service.start("default", "lone")
    a = await open_task(db, inst.id, "a")
    with pytest.raises(InvalidTransition, match="cancel its process instance"):
        await TaskRepository(db).cancel("default", a["id"])
    await db.execute(
        "UPDATE todolist SET status = 'FAILED', finished_at = now() WHERE id = $1", a["id"]
    )
    with pytest.raises(InvalidTransition, match="resolve its incident"):
        await TaskRepository(db).requeue("default", a["id"])

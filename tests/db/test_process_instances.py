"""Process instances advanced by the service's transactions (human steps, gateways, cancel,
messages, incidents, migration, forms)."""

from __future__ import annotations

import pytest

from processgpt.db.database import Database
from processgpt.domain.errors import InvalidTransition, ProcessNotFound
from processgpt.domain.process.model import Role
from processgpt.domain.process.state import InstanceStatus
from processgpt.domain.task import TaskStatus
from processgpt.runtime.process_service import ProcessService
from tests.domain.process.builders import build
from tests.runtime.process_support import human_task, open_task, publish, tasks_of


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

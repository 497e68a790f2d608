"""A worker's batch that ends several steps of one instance (and plain tasks) commits them
all with their steps, merged into one write per instance."""

from __future__ import annotations

from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.db.worker_queries import TaskWrite, WorkerQueries
from processgpt.domain.task import TaskStatus, TaskSubmission
from processgpt.runtime.process_service import ProcessService
from tests.domain.process.builders import build
from tests.runtime.process_support import agent_task, publish, tasks_of


async def test_one_batch_ends_both_branches_of_a_join_and_a_plain_task(db: Database) -> None:
    graph = build(
        "s>p1 p1>a p1>b a>p2 b>p2 p2>c c>e",
        nodes=[agent_task("a"), agent_task("b"), agent_task("c")],
        gid="batched",
    )
    await publish(db, graph)
    service = ProcessService(db)
    inst, _ = await service.start("default", "batched")
    plain, _ = await TaskRepository(db).submit(
        "default",
        TaskSubmission(agent_orch="stub", query="plain"),
        known_agents=frozenset({"stub"}),
    )
    queries = WorkerQueries(db)
    claimed = await queries.claim(["stub"], 10, "me", 30)
    assert len(claimed) == 3
    writes = [
        TaskWrite(
            t.id,
            t.fence,
            status=TaskStatus.DONE,
            output_json=f'{{"from_{t.record["activity_id"] or "plain"}": 1}}',
            step=t.step,
        )
        for t in claimed
    ]
    assert sum(w.ends_step for w in writes) == 2
    accepted = await queries.apply_batch(writes)
    assert accepted == {t.id for t in claimed}
    again = await queries.apply_batch(writes)  # a re-run after an unknown outcome
    assert again == accepted
    rows = await tasks_of(db, inst.id)
    assert sorted((r["activity_id"], r["status"]) for r in rows) == [
        ("a", "DONE"),
        ("b", "DONE"),
        ("c", "PENDING"),
    ]
    inst = await service.get("default", inst.id)
    assert inst.current_activity_ids == ["c"]
    assert inst.variables == {"from_a": 1, "from_b": 1}
    lines = await service.history("default", inst.id)
    assert [ln.seq for ln in lines] == list(range(1, len(lines) + 1))
    assert [ln.kind for ln in lines].count("join_fired") == 1
    assert (await TaskRepository(db).get("default", plain.id)).status is TaskStatus.DONE


async def test_a_step_whose_values_are_refused_is_set_apart_from_its_batch(db: Database) -> None:
    huge = "x" * 100_001  # longer than a task's query may be
    await publish(
        db,
        build("s>a a>b b>e", nodes=[agent_task("a"), agent_task("b", instruction=huge)], gid="bad"),
    )
    await publish(db, build("s>a a>b b>e", nodes=[agent_task("a"), agent_task("b")], gid="good"))
    service = ProcessService(db)
    bad, _ = await service.start("default", "bad")
    good, _ = await service.start("default", "good")
    queries = WorkerQueries(db)
    claimed = await queries.claim(["stub"], 10, "me", 30)
    writes = [
        TaskWrite(t.id, t.fence, status=TaskStatus.DONE, output_json="{}", step=t.step)
        for t in claimed
    ]
    assert await queries.apply_batch(writes) == {t.id for t in claimed}
    good_rows = await tasks_of(db, good.id)
    assert sorted((r["activity_id"], r["status"]) for r in good_rows) == [
        ("a", "DONE"),
        ("b", "PENDING"),
    ]
    [bad_row] = await tasks_of(db, bad.id)
    assert bad_row["status"] == "DONE" and bad_row["error"]["code"] == "process_step_failed"
    assert (await service.get("default", bad.id)).current_activity_ids == ["a"]

"""Process steps through real worker processes: a worker SIGKILLed while it runs and writes
steps leaves every instance either before or after each step, never between; another worker
finishes them."""

from __future__ import annotations

from processgpt.db.database import Database
from processgpt.runtime.process_service import ProcessService
from tests.domain.process.builders import build
from tests.runtime.process_support import agent_task, publish
from tests.support import StartProcess, start_worker_process, wait_until

INSTANCES = 12


async def test_sigkilled_worker_mid_steps_leaves_every_instance_whole(
    db: Database, start_process: StartProcess
) -> None:
    graph = build(
        "s>a a>p1 p1>b p1>c b>p2 c>p2 p2>d d>e",
        nodes=[agent_task(n, agent="demo") for n in "abcd"],
        gid="killsteps",
    )
    await publish(db, graph)
    service = ProcessService(db)
    ids = [
        (await service.start("default", "killsteps", variables={"steps": 3, "delay": 0.03}))[0].id
        for _ in range(INSTANCES)
    ]
    victim = await start_worker_process(start_process, "--lease-seconds", "2")
    await wait_until(
        lambda: db.fetchval(
            "SELECT count(*) >= $1 FROM todolist WHERE status = 'DONE' AND activation IS NOT NULL",
            INSTANCES,
        ),
        timeout=60,
    )
    victim.proc.kill()  # SIGKILL while later steps run and complete
    victim.proc.wait()
    await start_worker_process(start_process, "--lease-seconds", "2")

    async def all_completed() -> bool:
        return bool(
            await db.fetchval(
                "SELECT bool_and(status = 'COMPLETED') FROM bpm_proc_inst WHERE proc_def_id = $1",
                "killsteps",
            )
        )

    await wait_until(all_completed, timeout=90)
    for instance_id in ids:
        rows = await db.fetch(
            "SELECT activity_id, activation, status FROM todolist WHERE proc_inst_id = $1",
            instance_id,
        )
        assert sorted((r["activity_id"], r["activation"], r["status"]) for r in rows) == [
            (n, 1, "DONE") for n in "abcd"
        ]
        kinds = [
            r["kind"]
            for r in await db.fetch(
                "SELECT kind FROM process_history WHERE proc_inst_id = $1 ORDER BY seq",
                instance_id,
            )
        ]
        assert kinds.count("step_completed") == 4 and kinds.count("join_fired") == 1
        assert kinds[-1] == "instance_completed"
        inst = await service.get("default", instance_id)
        assert inst.variables["steps"] == 3 and "words" in inst.variables

"""Workers you can see (real API and worker processes): ``GET /v1/workers`` for operators,
lost workers, and the warnings of a task no live worker serves (REST, chat, A2A)."""

from __future__ import annotations

import json
import signal
import uuid

import httpx

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from processgpt.protocols.views import WARNING_HEADER
from tests.api.conftest import Api
from tests.support import ProcessGPTProcess, StartProcess, start_worker_process, wait_until

UNSERVED = (
    "no live worker serves agent 'idle': the task waits in the queue until one starts "
    "(processgpt worker --agent idle)"
)


async def _noop_worker(start_process: StartProcess, agent: str) -> ProcessGPTProcess:
    return await start_worker_process(
        start_process, "--executor", "tests.agents.executors:NoopExecutor", agent=agent
    )


async def _operator(db: Database) -> str:
    return (await ApiKeyRepository(db).create("acme", "ops", Role.OPERATOR)).key


async def _register_idle(db: Database) -> None:
    """An orchestrator some worker served once (so tasks may name it); none serves it now."""
    await db.execute(
        "INSERT INTO orchestrators (name, last_seen_at) VALUES ('idle', now() - interval '1 hour')"
    )


async def test_operators_see_every_worker_with_its_agents_and_slots(api: Api, db: Database) -> None:
    async with api.client(await _operator(db)) as ops:
        response = await ops.get("/v1/workers")
        assert response.status_code == 200, response.text
        workers = response.json()
    # the fixture's two worker processes: one serves `streaming`, one `demo`
    assert sorted(w["agents"][0] for w in workers) == ["demo", "streaming"]
    pids = {w["pid"] for w in workers}
    assert len(pids) == 2
    for worker in workers:
        assert worker["lost"] is False and worker["slots"] == 10 and worker["slots_in_use"] == 0
        assert worker["id"].split(":")[1] == str(worker["pid"])  # the consumer name
        assert worker["version"] and worker["host"]
    # members and tenant admins do not see the deployment
    member = (await ApiKeyRepository(db).create("acme", "m", Role.MEMBER)).key
    for key in (api.key_a, member):
        async with api.client(key) as client:
            refused = await client.get("/v1/workers")
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "forbidden"
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        assert (await anonymous.get("/v1/workers")).status_code == 401


async def test_a_killed_worker_shows_as_lost_then_is_forgotten(
    api: Api, db: Database, start_process: StartProcess
) -> None:
    doomed = await _noop_worker(start_process, "doomed")
    row = await db.fetchrow("SELECT * FROM workers WHERE 'doomed' = ANY (agents)")
    assert row is not None and row["pid"] == doomed.proc.pid
    doomed.kill()  # SIGKILL: no deregistration
    async with api.client(await _operator(db)) as ops:
        listed = {w["id"]: w for w in (await ops.get("/v1/workers")).json()}
        assert listed[row["id"]]["lost"] is False  # its heartbeat is recent
        # 40 s later (no beat since): lost
        await db.execute(
            "UPDATE workers SET last_heartbeat_at = now() - interval '40 seconds' WHERE id = $1",
            row["id"],
        )
        workers = (await ops.get("/v1/workers")).json()
        assert [w["lost"] for w in workers] == [False, False, True]  # the live first
        assert workers[-1]["id"] == row["id"]
        # a task for its agent is warned about: a lost worker serves nothing
        created = await ops.post("/v1/tasks", json={"agent_orch": "doomed", "query": "x"})
        assert created.status_code == 201 and created.json()["warnings"], created.text
        # two hours later: the next presence beat of a live worker deletes the row
        await db.execute(
            "UPDATE workers SET last_heartbeat_at = now() - interval '2 hours' WHERE id = $1",
            row["id"],
        )
        await _noop_worker(start_process, "doomed")  # its first beat cleans up

        async def forgotten() -> bool:
            return not await db.fetchval("SELECT count(*) FROM workers WHERE id = $1", row["id"])

        await wait_until(forgotten, timeout=30)
        assert len((await ops.get("/v1/workers")).json()) == 3


async def test_a_stopped_worker_deregisters(
    api: Api, db: Database, start_process: StartProcess
) -> None:
    worker = await _noop_worker(start_process, "brief")
    assert await db.fetchval("SELECT count(*) FROM workers WHERE 'brief' = ANY (agents)") == 1
    worker.signal(signal.SIGTERM)
    assert await worker.wait() == 0
    assert await db.fetchval("SELECT count(*) FROM workers WHERE 'brief' = ANY (agents)") == 0


async def test_a_task_no_live_worker_serves_is_queued_with_a_warning(
    api: Api, db: Database, start_process: StartProcess
) -> None:
    await _register_idle(db)
    async with api.client() as client:
        created = await client.post("/v1/tasks", json={"agent_orch": "idle", "query": "x"})
        assert created.status_code == 201, created.text
        task = created.json()
        assert task["status"] == "PENDING" and task["warnings"] == [UNSERVED]
        assert created.headers.get_list(WARNING_HEADER) == [UNSERVED]
        # stored like any other task, and GET says so while it waits
        got = await client.get(f"/v1/tasks/{task['id']}")
        assert got.json()["warnings"] == [UNSERVED] and got.json()["status"] == "PENDING"
        # the same create again (idempotency key) says so too
        again = await client.post(
            "/v1/tasks",
            json={"agent_orch": "idle", "query": "y"},
            headers={"Idempotency-Key": "k1"},
        )
        repeat = await client.post(
            "/v1/tasks",
            json={"agent_orch": "idle", "query": "y"},
            headers={"Idempotency-Key": "k1"},
        )
        assert again.status_code == 201 and repeat.status_code == 200
        assert repeat.json()["warnings"] == [UNSERVED]
        # a served agent: no warning, no header
        served = await client.post("/v1/tasks", json={"agent_orch": "demo", "query": "x"})
        assert served.json()["warnings"] == [] and WARNING_HEADER not in served.headers
        # a worker for it starts: the waiting task runs and the warning is gone
        await _noop_worker(start_process, "idle")
        fresh = await client.post("/v1/tasks", json={"agent_orch": "idle", "query": "z"})
        assert fresh.json()["warnings"] == [] and WARNING_HEADER not in fresh.headers

        async def done() -> bool:
            body = (await client.get(f"/v1/tasks/{task['id']}")).json()
            return body["status"] == "DONE" and body["warnings"] == []

        await wait_until(done, timeout=30)


async def test_a_chat_turn_and_an_a2a_message_for_an_unserved_agent_say_so(
    api: Api, db: Database
) -> None:
    await _register_idle(db)
    async with api.client() as client:
        # AI SDK useChat: a header, and a transient data part after the start
        async with client.stream(
            "POST",
            "/v1/chat",
            json={
                "id": "c1",
                "agent": "idle",
                "messages": [{"role": "user", "parts": [{"type": "text", "text": "hi"}]}],
            },
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers.get_list(WARNING_HEADER) == [UNSERVED]
            frames = []
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    frames.append(json.loads(line[6:]))
                if len(frames) == 2:
                    break
        assert frames[0]["type"] == "start"
        assert frames[1] == {"type": "data-warnings", "data": [UNSERVED], "transient": True}
        # A2A: the task's metadata
        sent = await client.post(
            "/a2a/idle/",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "message/send",
                "params": {
                    "message": {
                        "role": "user",
                        "messageId": str(uuid.uuid4()),
                        "parts": [{"kind": "text", "text": "hi"}],
                    },
                    "configuration": {"blocking": False},
                },
            },
        )
        assert sent.status_code == 200, sent.text
        result = sent.json()["result"]
        assert result["metadata"]["warnings"] == [UNSERVED], result

"""Memory through real processes: an OpenAI-compatible embeddings endpoint configured for the
``api`` and ``worker`` processes (the fake model server), a change of embedding model that
the restarted workers re-embed in the background, and a worker SIGKILLed in the middle of
learning from feedback."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.roles import Role
from tests.api.conftest import start_api
from tests.fake_llm import FakeLLM, Turn
from tests.support import StartProcess, wait_until

TENANT = "acme"
TAUGHT = [
    "Weekly sales reports are written as a table",
    "보고서는 항상 표 형식으로 작성한다",
    "Refunds above 500 euros need a manager approval",
]


def embeddings_env(fake_llm: FakeLLM, model: str) -> dict[str, str]:
    return {
        "PROCESSGPT_MEMORY_EMBEDDER": "openai",
        "PROCESSGPT_MEMORY_EMBEDDINGS_URL": fake_llm.base_url,
        "PROCESSGPT_MEMORY_EMBEDDINGS_MODEL": model,
        "PROCESSGPT_MEMORY_EMBEDDINGS_API_KEY": "sk-embeddings",
        "PROCESSGPT_MEMORY_THRESHOLD": "0.3",
        "PROCESSGPT_MEMORY_REEMBED_INTERVAL": "0.5",
        "PROCESSGPT_MEMORY_REEMBED_BATCH": "2",
    }


async def search(client: httpx.AsyncClient, query: str) -> list[dict[str, Any]]:
    response = await client.post("/v1/memories/search", json={"query": query, "limit": 3})
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()
    return hits


async def test_openai_embeddings_end_to_end_and_a_model_change_reembeds(
    db: Database, start_process: StartProcess, fake_llm: FakeLLM
) -> None:
    key = (await ApiKeyRepository(db).create(TENANT, role=Role.ADMIN)).key
    headers = {"authorization": f"Bearer {key}"}
    env_a = embeddings_env(fake_llm, "embed-a")
    api_a, url = await start_api(start_process, env_a)
    worker_a = start_process("worker", "--agent", "demo", env=env_a)
    await worker_a.wait_for_log("worker started")
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        for text in TAUGHT:
            response = await client.post("/v1/memories", json={"content": text})
            assert response.status_code == 201, response.text
        stored = await db.fetch("SELECT embedding_model FROM memories")
        assert [r["embedding_model"] for r in stored] == ["openai/embed-a"] * 3
        sent = fake_llm.embedding_requests
        assert sent and sent[0].body["model"] == "embed-a" and sent[0].body["dimensions"] == 384
        assert sent[0].headers["authorization"] == "Bearer sk-embeddings"

        (hit, *_) = await search(client, "how are sales reports written")
        assert hit["item"]["content"] == TAUGHT[0] and hit["similarity"] is not None
        (hit, *_) = await search(client, "보고서 형식")
        assert hit["item"]["content"] == TAUGHT[1] and hit["similarity"] is not None

        # A task of the worker gets the item in its context, found by the endpoint's vectors.
        response = await client.post(
            "/v1/tasks", json={"agent_orch": "demo", "query": "write the weekly sales report"}
        )
        assert response.status_code in (200, 201, 202), response.text
        task_id = response.json()["id"]
        await wait_until(
            lambda: db.fetchval(
                "SELECT status = 'DONE' FROM todolist WHERE id = $1", uuid.UUID(task_id)
            ),
            timeout=60,
        )
        used = (await client.get(f"/v1/memories/used-by/{task_id}")).json()
        assert next(u["content"] for u in used if u["how"] == "retrieved") == TAUGHT[0]

    # The operator switches to model B: items of A are found by full text only until the
    # restarted worker has re-embedded them.
    api_a.kill()
    worker_a.kill()
    env_b = embeddings_env(fake_llm, "embed-b")
    _api_b, url = await start_api(start_process, env_b)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        (hit, *_) = await search(client, "sales reports table")
        assert hit["item"]["content"] == TAUGHT[0] and hit["similarity"] is None
        worker_b = start_process("worker", "--agent", "demo", env=env_b)
        await worker_b.wait_for_log("worker started")

        async def reembedded() -> bool:
            rows = await db.fetch("SELECT embedding_model FROM memories")
            return [r["embedding_model"] for r in rows] == ["openai/embed-b"] * 3

        await wait_until(reembedded, timeout=60)
        (hit, *_) = await search(client, "sales reports table")
        assert hit["item"]["content"] == TAUGHT[0] and hit["similarity"] is not None
    assert "memory re-embedded" in worker_b.log()
    models = {r.body["model"] for r in fake_llm.embedding_requests}
    assert models == {"embed-a", "embed-b"}
    history = await db.fetchval(
        "SELECT count(*) FROM memory_history WHERE action = 're-embedded' AND actor = 'system'"
    )
    assert history == 3


EXTRACT = "existing_memories"  # only lesson-extraction requests contain it
LESSON = "보고서는 항상 표 형식으로 작성한다."


def learning_env(fake_llm: FakeLLM) -> dict[str, str]:
    return {
        **embeddings_env(fake_llm, "embed-a"),
        "PROCESSGPT_LLM_BASE_URL": fake_llm.base_url,
        "PROCESSGPT_LLM_API_KEY": "sk-test",
        "PROCESSGPT_LLM_MODEL": "fake-model",
        "PROCESSGPT_MEMORY_LEARNING_LEASE_SECONDS": "2",
    }


async def test_a_worker_killed_while_learning_applies_the_feedback_once(
    db: Database, start_process: StartProcess, fake_llm: FakeLLM
) -> None:
    await db.execute("INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING", TENANT)
    task_id = await db.fetchval(
        """INSERT INTO todolist (tenant_id, agent_orch, status, activity_id, query, output,
                                 finished_at)
           VALUES ($1, 'demo', 'DONE', 'weekly-report', '이번 주 매출 보고서를 써줘',
                   '{"text": "매출: 100, 비용: 50"}', now())
           RETURNING id""",
        TENANT,
    )
    answer = json.dumps(
        {"lessons": [{"content": LESSON, "kind": "guideline", "action": "new"}]},
        ensure_ascii=False,
    )
    # The first worker's extraction hangs (the model is slow); it is killed meanwhile.
    fake_llm.add(Turn(text=answer, match=EXTRACT, delay=5), Turn(text=answer, match=EXTRACT))
    await TaskRepository(db).set_feedback(TENANT, task_id, "보고서는 항상 표 형식으로")
    env = learning_env(fake_llm)

    victim = start_process("worker", "--agent", "demo", env=env)
    await victim.wait_for_log("worker started")
    await wait_until(lambda: len(fake_llm.requests) == 1, timeout=60)
    row = await db.fetchrow(
        "SELECT status, attempts FROM memory_feedback WHERE task_id = $1", task_id
    )
    assert (row["status"], row["attempts"]) == ("processing", 1)
    victim.proc.kill()  # SIGKILL in the middle of the learning step
    victim.proc.wait()
    assert await db.fetchval("SELECT count(*) FROM memories") == 0

    heir = start_process("worker", "--agent", "demo", env=env)
    await heir.wait_for_log("worker started")
    await wait_until(
        lambda: db.fetchval(
            "SELECT status = 'done' FROM memory_feedback WHERE task_id = $1", task_id
        ),
        timeout=60,
    )
    row = await db.fetchrow("SELECT * FROM memory_feedback WHERE task_id = $1", task_id)
    assert row["attempts"] == 2 and len(fake_llm.requests) == 2
    items = await db.fetch("SELECT * FROM memories")
    assert len(items) == 1
    (item,) = items
    assert item["content"] == LESSON and item["status"] == "active"
    assert item["source_feedback_id"] == row["id"] and item["source_task_id"] == task_id
    assert item["embedding_model"] == "openai/embed-a"
    history = await db.fetch("SELECT action FROM memory_history WHERE memory_id = $1", item["id"])
    assert [h["action"] for h in history] == ["created"]
    assert row["outcome"]["lessons"][0]["action"] == "new"

"""Re-embedding in the background: items stored with model A are found by full text only
under model B (never compared with B's vectors), until the loop gives them B's vectors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest

from processgpt.db.database import Database
from processgpt.db.memories import MemoryRepository
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import RetryLater
from processgpt.domain.memory import MemoryCreate, MemoryScope
from processgpt.memory.embedder import Vector
from processgpt.memory.service import MemoryOptions, MemoryService
from processgpt.runtime.reembedding import ReembedLoop, ReembedOptions
from tests.memory.conftest import HashEmbedder
from tests.support import wait_until

BOSS = "boss@acme"
ITEMS = [
    "ship invoices by registered mail",
    "보고서는 항상 표 형식으로 작성한다",
    "refunds above 500 need a manager approval",
]


def service(db: Database, embedder: object) -> MemoryService:
    return MemoryService(MemoryRepository(db), embedder, MemoryOptions(threshold=0.3))  # type: ignore[arg-type]


async def teach_all(memory: MemoryService) -> list[uuid.UUID]:
    ids = []
    for text in ITEMS:
        item, _ = await memory.teach("acme", MemoryCreate(content=text), actor=BOSS)
        ids.append(item.id)
    item, _ = await memory.teach("globex", MemoryCreate(content=ITEMS[0]), actor=BOSS)
    ids.append(item.id)
    return ids


async def models(db: Database) -> list[str | None]:
    rows = await db.fetch("SELECT embedding_model FROM memories ORDER BY id")
    return [r["embedding_model"] for r in rows]


async def test_a_model_change_reembeds_in_the_background(
    db: Database, hashed_memory: MemoryService
) -> None:
    old = service(db, HashEmbedder("model-a"))
    ids = await teach_all(old)
    plain, _ = await service(db, None).teach(  # stored by a process without an embedder
        "acme", MemoryCreate(content="invoices go out on Fridays"), actor=BOSS
    )
    new = service(db, HashEmbedder("model-b"))
    assert await new.repo.stale_count("model-b") == 5

    # Meanwhile: found by full text, never by comparing model B's query with A's vectors.
    (hit,) = await new.search("acme", MemoryScope(), "registered mail", limit=1)
    assert hit.item.id == ids[0] and hit.similarity is None
    assert await new.search("acme", MemoryScope(), "registered mail", mode="vector") == []

    loop = ReembedLoop(new, ReembedOptions(batch=2, interval=0.05))
    running = asyncio.create_task(loop.run())
    await wait_until(lambda: _none_stale(new), timeout=10)
    loop.stop()
    await asyncio.wait_for(running, 10)
    assert loop.reembedded == 5
    assert await models(db) == ["model-b"] * 5

    (hit,) = await new.search("acme", MemoryScope(), "registered mail", limit=1, mode="vector")
    assert hit.item.id == ids[0] and hit.similarity is not None and hit.similarity > 0.5
    (hit,) = await new.search("acme", MemoryScope(), "보고서 형식", limit=1, mode="vector")
    assert hit.item.id == ids[1]
    (hit,) = await new.search("acme", MemoryScope(), "invoices fridays", limit=1, mode="vector")
    assert hit.item.id == plain.id
    for memory_id in [*ids, plain.id]:
        tenant = "globex" if memory_id == ids[3] else "acme"
        actions = [c.action for c in await new.repo.history(tenant, memory_id)]
        assert actions == ["created", "re-embedded"]
    assert await new.reembed(10) == 0  # nothing left: idempotent


async def _none_stale(memory: MemoryService) -> bool:
    return await memory.repo.stale_count("model-b") == 0


class SlowEmbedder(HashEmbedder):
    """Model B, taking its time over each batch (like a remote endpoint)."""

    def __init__(self) -> None:
        super().__init__("model-b")
        self.calls = 0
        self.fail = False

    async def passages(self, texts: Sequence[str]) -> list[Vector]:
        self.calls += 1
        if self.fail:
            raise RetryLater("the embeddings endpoint answered HTTP 503")
        await asyncio.sleep(0.5)
        return await super().passages(texts)


async def test_workers_share_batches_and_tasks_never_wait_for_them(
    db: Database, hashed_memory: MemoryService
) -> None:
    ids = await teach_all(service(db, HashEmbedder("model-a")))
    first, second = service(db, SlowEmbedder()), service(db, SlowEmbedder())
    batches = [asyncio.create_task(first.reembed(2)), asyncio.create_task(second.reembed(2))]
    await asyncio.sleep(0.2)  # both batches claimed, their embedder calls under way
    # A task recording that it used a claimed item (a foreign key to it) and a search do not
    # wait for the batch.
    started = asyncio.get_running_loop().time()
    await hashed_memory.repo.record_uses("acme", uuid.uuid4(), [(ids[0], "retrieved", 1, 0.9)])
    await hashed_memory.search("acme", MemoryScope(), "registered mail")
    assert asyncio.get_running_loop().time() - started < 0.3
    assert sorted(await asyncio.gather(*batches)) == [2, 2]  # different items, no overlap
    assert await models(db) == ["model-b"] * 4
    count = await db.fetchval("SELECT count(*) FROM memory_history WHERE action = 're-embedded'")
    assert count == 4


async def test_a_failed_batch_changes_nothing_and_is_retried(
    db: Database, hashed_memory: MemoryService
) -> None:
    await teach_all(service(db, HashEmbedder("model-a")))
    embedder = SlowEmbedder()
    embedder.fail = True
    memory = service(db, embedder)
    loop = ReembedLoop(memory, ReembedOptions(batch=10, interval=0.05, retry_delay=0.05))
    running = asyncio.create_task(loop.run())
    await wait_until(lambda: embedder.calls >= 2)
    assert await models(db) == ["model-a"] * 4
    assert await memory.repo.stale_count("model-b") == 4  # rolled back, rows not held
    embedder.fail = False
    await wait_until(lambda: _none_stale(memory), timeout=10)
    loop.stop()
    await asyncio.wait_for(running, 10)
    assert loop.reembedded == 4


@pytest.mark.parametrize("stale", [0, 3])
async def test_the_stale_probe_uses_the_model_index(db: Database, stale: int) -> None:
    await db.execute("INSERT INTO tenants (id) VALUES ('acme') ON CONFLICT DO NOTHING")
    await db.execute(
        """INSERT INTO memories (tenant_id, kind, content, content_hash, embedding,
                                 embedding_model, terms, status, source)
           SELECT 'acme', 'fact', 'item ' || i, sha256(('item ' || i)::bytea),
                  CASE WHEN i > $1 THEN array_fill(0.1::real, ARRAY[384])::vector END,
                  CASE WHEN i > $1 THEN 'new' END, to_tsvector('simple', 'x'), 'active', 'boss'
           FROM generate_series(1, 5000) i""",
        stale,
    )
    await db.execute("ANALYZE memories")
    plan = "\n".join(
        r[0] for r in await db.fetch("EXPLAIN " + QUERIES["memory_stale_embeddings"], "new", 16)
    )
    assert "memories_embedding_model" in plan, plan

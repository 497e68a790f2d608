"""The memory store on the real (embedded) Postgres with pgvector: dedup, Korean full text,
supersede with history, isolation by tenant and scope, bulk delete, expiry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from processgpt.db.database import Database
from processgpt.db.memories import MemoryRepository, NewMemory
from processgpt.domain.errors import InvalidTransition, MemoryNotFound
from processgpt.domain.memory import (
    MemoryCreate,
    MemoryKind,
    MemoryScope,
    MemorySource,
    MemoryStatus,
    hangul_bigrams,
    search_terms,
)
from processgpt.memory.service import QUIET_FOR, MemoryService
from tests.memory.conftest import HashEmbedder

BOSS = "boss@acme"


async def test_the_same_content_twice_in_a_scope_is_one_item(memory: MemoryService) -> None:
    scope = MemoryScope(agent="report-writer")
    first, created = await memory.teach(
        "acme", MemoryCreate(content="보고서는 항상 표 형식으로", scope=scope), actor=BOSS
    )
    assert created
    for text in (
        "보고서는 항상 표 형식으로",
        "  보고서는   항상 표 형식으로. ",
        "보고서는 항상 표 형식으로!",
    ):
        again, created = await memory.teach(
            "acme", MemoryCreate(content=text, scope=scope), actor=BOSS
        )
        assert not created and again.id == first.id
    # another scope is another item
    other, created = await memory.teach(
        "acme", MemoryCreate(content="보고서는 항상 표 형식으로", scope=MemoryScope()), actor=BOSS
    )
    assert created and other.id != first.id
    items = await memory.repo.list_items("acme", status=MemoryStatus.ACTIVE)
    assert len(items) == 2


def test_korean_terms_share_bigrams_across_particles() -> None:
    assert set(hangul_bigrams("보고서는").split()) & set(hangul_bigrams("보고서를").split())
    assert "보고" in hangul_bigrams("보고서를 작성").split()
    assert search_terms("Reports, ALWAYS!") == "reports always"


async def test_korean_full_text_matches_other_particles_and_english_words(
    memory: MemoryService,
) -> None:
    for text in ("보고서는 항상 표 형식으로 작성한다.", "Invoices are paid on the 25th."):
        await memory.teach("acme", MemoryCreate(content=text), actor=BOSS)
    hits = await memory.search("acme", MemoryScope(), "보고서를 어떻게 쓰나", mode="text")
    assert [h.item.content for h in hits] == ["보고서는 항상 표 형식으로 작성한다."]
    hits = await memory.search("acme", MemoryScope(), "when are invoices paid", mode="text")
    assert [h.item.content for h in hits] == ["Invoices are paid on the 25th."]


async def test_vector_search_crosses_languages(memory: MemoryService) -> None:
    for text in ("보고서는 항상 표 형식으로 작성한다.", "The help desk is open from 9 am to 6 pm."):
        await memory.teach("acme", MemoryCreate(content=text), actor=BOSS)
    hits = await memory.search(
        "acme", MemoryScope(), "how should reports be formatted", mode="vector"
    )
    assert hits and hits[0].item.content == "보고서는 항상 표 형식으로 작성한다."
    assert hits[0].similarity is not None and hits[0].similarity >= 0.8


async def test_a_correction_supersedes_the_old_item_and_history_shows_both(
    memory: MemoryService,
) -> None:
    scope = MemoryScope(agent="support-bot")
    old, _ = await memory.teach(
        "acme",
        MemoryCreate(content="The help desk is open from 9 am to 5 pm.", scope=scope),
        actor=BOSS,
    )
    new = await memory.supersede(
        "acme",
        old.id,
        MemoryCreate(
            kind=MemoryKind.CORRECTION,
            content="The help desk is open from 9 am to 6 pm.",
            original="The help desk is open from 9 am to 5 pm.",
            reason="hours changed",
        ),
        actor=BOSS,
    )
    assert new.scope == scope and new.kind is MemoryKind.CORRECTION
    hits = await memory.search("acme", scope, "help desk opening hours")
    assert [h.item.id for h in hits] == [new.id]
    old_now = await memory.repo.get("acme", old.id)
    assert old_now.status is MemoryStatus.SUPERSEDED and old_now.superseded_by == new.id
    old_history = await memory.repo.history("acme", old.id)
    assert [c.action for c in old_history] == ["created", "superseded"]
    assert old_history[1].before is not None and old_history[1].before["status"] == "active"
    assert old_history[1].reason == "hours changed"
    assert [c.action for c in await memory.repo.history("acme", new.id)] == ["created"]
    with pytest.raises(InvalidTransition):  # superseding twice: the old one is not active
        await memory.supersede("acme", old.id, MemoryCreate(content="x"), actor=BOSS)


async def test_isolation_by_tenant_and_agent(memory: MemoryService) -> None:
    await memory.teach(
        "acme",
        MemoryCreate(content="보고서는 항상 표 형식으로", scope=MemoryScope(agent="x")),
        actor=BOSS,
    )
    await memory.teach("acme", MemoryCreate(content="보고서는 PDF로 보낸다"), actor=BOSS)
    text = "보고서 형식"
    as_x = await memory.search("acme", MemoryScope(agent="x"), text, threshold=-1)
    as_y = await memory.search("acme", MemoryScope(agent="y"), text, threshold=-1)
    other_tenant = await memory.search("globex", MemoryScope(agent="x"), text, threshold=-1)
    assert {h.item.content for h in as_x} == {"보고서는 항상 표 형식으로", "보고서는 PDF로 보낸다"}
    assert {h.item.content for h in as_y} == {"보고서는 PDF로 보낸다"}
    assert other_tenant == []
    item = as_x[0].item
    with pytest.raises(MemoryNotFound):
        await memory.repo.get("globex", item.id)
    with pytest.raises(MemoryNotFound):
        await memory.delete("globex", item.id, actor="intruder", reason=None)


async def test_bulk_delete_of_a_scope_counts_exactly_and_leaves_other_scopes(
    hashed_memory: MemoryService,
) -> None:
    repo = hashed_memory.repo
    target = MemoryScope(agent="x", activity_id="review")
    async with repo.db.transaction() as conn:
        for i in range(1000):
            new = NewMemory(
                scope=target,
                kind=MemoryKind.FACT,
                content=f"fact number {i} about reviews",
                status=MemoryStatus.ACTIVE,
                source=MemorySource.BOSS,
                embedding=None,
                embedding_model=None,
            )
            await repo.insert("acme", new, actor=BOSS, conn=conn)
    keep = [
        ("acme", MemoryScope(agent="x")),
        ("acme", MemoryScope(agent="x", activity_id="other")),
        ("acme", MemoryScope(agent="y", activity_id="review")),
        ("globex", target),
    ]
    for tenant, scope in keep:
        await hashed_memory.teach(
            tenant, MemoryCreate(content="fact number 1 about reviews", scope=scope), actor=BOSS
        )
    assert await repo.delete_scope("acme", target, actor=BOSS, reason="cleanup") == 1000
    assert await repo.delete_scope("acme", target, actor=BOSS, reason="again") == 0
    found = await hashed_memory.search("acme", target, "fact number about reviews", limit=50)
    assert {h.item.scope for h in found} == {MemoryScope(agent="x")}
    for tenant, scope in keep:
        live = await repo.list_items(tenant, status=MemoryStatus.ACTIVE, scope=scope)
        assert len([i for i in live if i.scope == scope]) == 1, (tenant, scope)


async def test_expired_and_not_yet_valid_items_are_never_retrieved(
    hashed_memory: MemoryService, db: Database
) -> None:
    now = datetime.now(UTC)
    live, _ = await hashed_memory.teach(
        "acme", MemoryCreate(content="shipping to jeju takes two days", pinned=True), actor=BOSS
    )
    expiring, _ = await hashed_memory.teach(
        "acme",
        MemoryCreate(
            content="shipping to jeju takes five days",
            pinned=True,
            expires_at=now + timedelta(seconds=0.5),
        ),
        actor=BOSS,
    )
    await hashed_memory.teach(
        "acme",
        MemoryCreate(content="shipping to jeju takes one day", valid_from=now + timedelta(days=1)),
        actor=BOSS,
    )
    await hashed_memory.teach(
        "acme",
        MemoryCreate(
            content="shipping to jeju takes nine days",
            valid_from=now - timedelta(days=2),
            valid_to=now - timedelta(days=1),
        ),
        actor=BOSS,
    )
    await db.execute(
        "UPDATE memories SET expires_at = now() - interval '1 second' WHERE id = $1", expiring.id
    )
    for mode in ("hybrid", "vector", "text"):
        hits = await hashed_memory.search(
            "acme", MemoryScope(), "shipping to jeju", mode=mode, threshold=-1
        )
        assert [h.item.id for h in hits] == [live.id], mode
    context = await hashed_memory.for_context("acme", MemoryScope(), "shipping to jeju")
    assert [i.id for i in context.pinned] == [live.id] and context.retrieved == []


async def test_a_selective_scope_filter_loses_nothing_with_the_hnsw_index(
    hashed_memory: MemoryService, db: Database
) -> None:
    """2,000 items of one agent, 3 of another: the rare agent's search still finds all 3
    (pgvector's iterative index scan keeps going past the filtered-out rows)."""
    repo = hashed_memory.repo
    embed = hashed_memory.embedder
    assert embed is not None
    async with repo.db.transaction() as conn:
        texts = [f"common item {i} shipping schedule" for i in range(2000)]
        vectors = await embed.passages(texts)
        for text, vector in zip(texts, vectors, strict=True):
            await repo.insert(
                "acme",
                NewMemory(
                    scope=MemoryScope(agent="busy"),
                    kind=MemoryKind.FACT,
                    content=text,
                    status=MemoryStatus.ACTIVE,
                    source=MemorySource.BOSS,
                    embedding=vector,
                    embedding_model=embed.name,
                ),
                actor=BOSS,
                conn=conn,
            )
    rare = []
    for text in ("rare shipping rule one", "rare shipping rule two", "rare shipping rule three"):
        item, _ = await hashed_memory.teach(
            "acme", MemoryCreate(content=text, scope=MemoryScope(agent="rare")), actor=BOSS
        )
        rare.append(item.id)
    await db.execute("ANALYZE memories")
    hits = await hashed_memory.search(
        "acme",
        MemoryScope(agent="rare"),
        "common item shipping schedule",
        mode="vector",
        threshold=-1,
        limit=10,
    )
    assert {h.item.id for h in hits} == set(rare)


async def test_proposals_are_approved_or_rejected_once(memory: MemoryService) -> None:
    proposal, _ = await memory.teach(
        "acme", MemoryCreate(content="답변은 세 문장 이내로", proposed=True), actor="agent"
    )
    assert proposal.status is MemoryStatus.PROPOSED
    assert await memory.search("acme", MemoryScope(), "답변 길이", threshold=-1) == []
    approved = await memory.approve("acme", proposal.id, actor=BOSS, reason="yes")
    assert approved.status is MemoryStatus.ACTIVE
    with pytest.raises(InvalidTransition):
        await memory.reject("acme", proposal.id, actor=BOSS, reason=None)
    other, _ = await memory.teach(
        "acme", MemoryCreate(content="답변은 영어로", proposed=True), actor="agent"
    )
    rejected = await memory.reject("acme", other.id, actor=BOSS, reason="no")
    assert rejected.status is MemoryStatus.DELETED
    assert [c.action for c in await memory.repo.history("acme", other.id)] == [
        "proposed",
        "rejected",
    ]
    with pytest.raises(MemoryNotFound):
        await memory.approve("acme", uuid.uuid4(), actor=BOSS, reason=None)


async def test_history_is_append_only(memory: MemoryService, db: Database) -> None:
    item, _ = await memory.teach("acme", MemoryCreate(content="a fact"), actor=BOSS)
    with pytest.raises(Exception, match="append-only"):
        await db.execute("UPDATE memory_history SET actor = 'x' WHERE memory_id = $1", item.id)


async def test_a_tenant_without_items_is_not_probed_again_for_a_moment(
    hashed_memory: MemoryService, db: Database
) -> None:
    # Another process (the API) teaches while this one (a worker) has just found nothing:
    # this service keeps answering "none" for QUIET_FOR seconds, then sees the item; an
    # item added through this service itself counts at once.
    api = MemoryService(MemoryRepository(db), HashEmbedder())
    assert not await hashed_memory.has_active("acme")
    await api.teach("acme", MemoryCreate(content="ship by sea", scope=MemoryScope()), actor=BOSS)
    assert not await hashed_memory.has_active("acme")  # within the quiet window
    await asyncio.sleep(QUIET_FOR + 0.1)
    assert await hashed_memory.has_active("acme")
    assert not await hashed_memory.has_active("globex")
    await hashed_memory.teach(
        "globex", MemoryCreate(content="ship by air", scope=MemoryScope()), actor=BOSS
    )
    assert await hashed_memory.has_active("globex")

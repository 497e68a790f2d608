"""The memory repository: items, their history and uses, and the learning policies.

Items are never hard-deleted here: deleting, superseding and rejecting are status changes,
each logged in ``memory_history`` in the same transaction. Embeddings travel as pgvector's
text form (``[0.1,0.2,…]``); the caller computes them (:mod:`processgpt.memory`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import InvalidInput, MemoryNotFound, MemoryStateConflict
from processgpt.domain.memory import (
    MemoryChange,
    MemoryHit,
    MemoryItem,
    MemoryKind,
    MemoryScope,
    MemorySource,
    MemoryStatus,
    content_hash,
    hangul_bigrams,
    search_terms,
)

LIVE = ("proposed", "active")


def vector_text(vector: Sequence[float] | None) -> str | None:
    """pgvector's text form of ``vector`` (None stays None)."""
    if vector is None:
        return None
    return "[" + ",".join(f"{x:.6g}" for x in vector) + "]"


@dataclass(frozen=True)
class NewMemory:
    """An item to insert, with its embedding already computed."""

    scope: MemoryScope
    kind: MemoryKind
    content: str
    status: MemoryStatus
    source: MemorySource
    embedding: Sequence[float] | None
    embedding_model: str | None
    original: str | None = None
    pinned: bool = False
    source_task_id: uuid.UUID | None = None
    source_feedback_id: uuid.UUID | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    expires_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class SearchOptions:
    """How to search: the query's vector and text, the similarity threshold, how many."""

    vector: Sequence[float] | None
    text: str
    model: str | None
    threshold: float = 0.0
    limit: int = 5
    candidates: int = 40
    use_vector: bool = True
    use_text: bool = True
    ef_search: int = 100


def _snapshot(item: MemoryItem) -> dict[str, Any]:
    return item.model_dump(
        mode="json",
        include={
            "kind",
            "content",
            "original",
            "status",
            "pinned",
            "valid_from",
            "valid_to",
            "expires_at",
            "superseded_by",
        },
    )


class MemoryRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes ---------------------------------------------------------------------------

    async def insert(
        self,
        tenant_id: str,
        new: NewMemory,
        *,
        actor: str,
        reason: str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> tuple[MemoryItem, bool]:
        """Insert ``new``; return it and True, or the live item with the same content in the
        same scope and False (nothing written then)."""
        if conn is None:
            async with self.db.transaction() as own:
                return await self.insert(tenant_id, new, actor=actor, reason=reason, conn=own)
        digest = content_hash(new.content)
        try:
            row = await conn.fetchrow(
                QUERIES["memory_insert"],
                tenant_id,
                *new.scope.args(),
                new.kind.value,
                new.content,
                new.original,
                digest,
                vector_text(new.embedding),
                new.embedding_model,
                search_terms(new.content),
                new.status.value,
                new.pinned,
                new.source.value,
                new.source_task_id,
                new.source_feedback_id,
                new.valid_from,
                new.valid_to,
                new.expires_at,
                new.created_by,
                hangul_bigrams(new.content),
            )
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise InvalidInput(f"tenant {tenant_id!r} does not exist") from None
        except (asyncpg.exceptions.CheckViolationError, asyncpg.exceptions.DataError) as exc:
            raise InvalidInput(
                f"memory item refused by the schema: {exc.__class__.__name__}"
            ) from None
        if row is None:
            found = await conn.fetchrow(
                QUERIES["memory_find_duplicate"], tenant_id, *new.scope.args(), digest
            )
            if found is None:  # the duplicate left the live states meanwhile: try once more
                return await self.insert(tenant_id, new, actor=actor, reason=reason, conn=conn)
            return MemoryItem.from_row(found), False
        item = MemoryItem.from_row(row)
        action = "proposed" if item.status is MemoryStatus.PROPOSED else "created"
        await self._log(conn, tenant_id, item.id, actor, action, reason, None, _snapshot(item))
        return item, True

    async def update(
        self,
        tenant_id: str,
        memory_id: uuid.UUID,
        changes: dict[str, Any],
        *,
        actor: str,
        reason: str | None,
        embed: Any = None,
    ) -> MemoryItem:
        """Apply ``changes`` (fields of :class:`~processgpt.domain.memory.MemoryPatch`) to a
        live item. ``embed``: ``async (content) -> (vector, model)``, called when the content
        changes."""
        async with self.db.transaction() as conn:
            before = await self._locked(conn, tenant_id, memory_id)
            if before.status.value not in LIVE:
                raise MemoryStateConflict(f"memory {memory_id} is {before.status.value}")
            values = {**before.model_dump(), **changes}
            if values["kind"] == MemoryKind.CORRECTION and not values["original"]:
                raise InvalidInput("a correction needs the original answer", field="original")
            reembed = "content" in changes and changes["content"] != before.content
            vector: Sequence[float] | None = None
            model: str | None = None
            if reembed and embed is not None:
                vector, model = await embed(values["content"])
            try:
                row = await conn.fetchrow(
                    QUERIES["memory_update"],
                    tenant_id,
                    memory_id,
                    MemoryKind(values["kind"]).value,
                    values["content"],
                    values["original"],
                    content_hash(values["content"]),
                    vector_text(vector),
                    model,
                    search_terms(values["content"]),
                    values["pinned"],
                    values["valid_from"],
                    values["valid_to"],
                    values["expires_at"],
                    reembed,
                    hangul_bigrams(values["content"]),
                )
            except asyncpg.exceptions.UniqueViolationError:
                raise MemoryStateConflict(
                    "an item with the same content already exists in this scope"
                ) from None
            except (asyncpg.exceptions.CheckViolationError, asyncpg.exceptions.DataError) as exc:
                raise InvalidInput(
                    f"change refused by the schema: {exc.__class__.__name__}"
                ) from None
            after = MemoryItem.from_row(row)
            await self._log(
                conn,
                tenant_id,
                memory_id,
                actor,
                "updated",
                reason,
                _snapshot(before),
                _snapshot(after),
            )
            return after

    async def set_status(
        self,
        tenant_id: str,
        memory_id: uuid.UUID,
        status: MemoryStatus,
        *,
        allowed_from: Sequence[MemoryStatus],
        actor: str,
        action: str,
        reason: str | None,
        superseded_by: uuid.UUID | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> MemoryItem:
        """Move an item to ``status`` when it is in one of ``allowed_from`` (409 otherwise)."""
        if conn is None:
            async with self.db.transaction() as own:
                return await self.set_status(
                    tenant_id,
                    memory_id,
                    status,
                    allowed_from=allowed_from,
                    actor=actor,
                    action=action,
                    reason=reason,
                    superseded_by=superseded_by,
                    conn=own,
                )
        before = await self._locked(conn, tenant_id, memory_id)
        row = await conn.fetchrow(
            QUERIES["memory_set_status"],
            tenant_id,
            memory_id,
            status.value,
            superseded_by,
            [s.value for s in allowed_from],
        )
        if row is None:
            raise MemoryStateConflict(
                f"memory {memory_id} is {before.status.value}; it cannot be {action}"
            )
        after = MemoryItem.from_row(row)
        await self._log(
            conn, tenant_id, memory_id, actor, action, reason, _snapshot(before), _snapshot(after)
        )
        return after

    async def delete_scope(
        self, tenant_id: str, scope: MemoryScope, *, actor: str, reason: str | None
    ) -> int:
        """Mark every live item of exactly ``scope`` deleted; return how many."""
        async with self.db.transaction() as conn:
            count: int = await conn.fetchval(
                QUERIES["memory_delete_scope"], tenant_id, *scope.args(), actor, reason
            )
            return count

    # -- reads ----------------------------------------------------------------------------

    async def get(self, tenant_id: str, memory_id: uuid.UUID) -> MemoryItem:
        row = await self.db.fetchrow(QUERIES["memory_get"], tenant_id, memory_id)
        if row is None:
            raise MemoryNotFound(memory_id)
        return MemoryItem.from_row(row)

    async def list_items(
        self,
        tenant_id: str,
        *,
        status: MemoryStatus | None = None,
        scope: MemoryScope | None = None,
        kind: MemoryKind | None = None,
        pinned: bool | None = None,
        source: MemorySource | None = None,
        before: uuid.UUID | None = None,
        limit: int = 50,
    ) -> list[MemoryItem]:
        """Items newest first; each filter given narrows (a scope column None: any)."""
        scope = scope or MemoryScope()
        rows = await self.db.fetch(
            QUERIES["memory_list"],
            tenant_id,
            status.value if status else None,
            *scope.args(),
            kind.value if kind else None,
            pinned,
            source.value if source else None,
            before,
            limit,
        )
        return [MemoryItem.from_row(r) for r in rows]

    async def history(self, tenant_id: str, memory_id: uuid.UUID) -> list[MemoryChange]:
        await self.get(tenant_id, memory_id)
        rows = await self.db.fetch(QUERIES["memory_history_list"], tenant_id, memory_id)
        return [MemoryChange.model_validate(dict(r)) for r in rows]

    async def search(
        self, tenant_id: str, scope: MemoryScope, options: SearchOptions
    ) -> list[MemoryHit]:
        """The best live items ``scope`` covers (see the ``memory_search`` query)."""
        use_vector = options.use_vector and options.vector is not None and options.model is not None
        async with self.db.transaction() as conn:
            await conn.fetchrow(QUERIES["memory_iterative_scan"], str(options.ef_search))
            rows = await conn.fetch(
                QUERIES["memory_search"],
                tenant_id,
                *scope.args(),
                vector_text(options.vector) if use_vector else None,
                search_terms(options.text),
                options.threshold,
                use_vector,
                options.use_text,
                options.model,
                options.candidates,
                options.limit,
                hangul_bigrams(options.text),
            )
        return [
            MemoryHit(item=MemoryItem.from_row(r), score=r["score"], similarity=r["similarity"])
            for r in rows
        ]

    async def any_active(self, tenant_id: str) -> bool:
        return bool(await self.db.fetchval(QUERIES["memory_any_active"], tenant_id))

    async def pinned(self, tenant_id: str, scope: MemoryScope, limit: int) -> list[MemoryItem]:
        rows = await self.db.fetch(QUERIES["memory_pinned"], tenant_id, *scope.args(), limit)
        return [MemoryItem.from_row(r) for r in rows]

    # -- uses -----------------------------------------------------------------------------

    async def record_uses(
        self,
        tenant_id: str,
        task_id: uuid.UUID,
        uses: Sequence[tuple[uuid.UUID, str, int, float | None]],
    ) -> None:
        """Record which items a task was given (``(memory id, how, rank, score)``)."""
        if not uses:
            return
        await self.db.execute(
            QUERIES["memory_uses_add"],
            tenant_id,
            task_id,
            [u[0] for u in uses],
            [u[1] for u in uses],
            [u[2] for u in uses],
            [u[3] for u in uses],
        )

    async def uses_of_task(self, tenant_id: str, task_id: uuid.UUID) -> list[dict[str, Any]]:
        rows = await self.db.fetch(QUERIES["memory_uses_of_task"], tenant_id, task_id)
        return [dict(r) for r in rows]

    # -- embeddings -----------------------------------------------------------------------

    async def reembed_stale(
        self,
        model: str,
        limit: int,
        embed: Callable[[Sequence[str]], Awaitable[Sequence[Sequence[float]]]],
    ) -> int:
        """Re-embed up to ``limit`` live items whose model is not ``model`` with ``embed``
        (``async (texts) -> vectors``); returns how many. The batch is claimed with ``FOR NO
        KEY UPDATE SKIP LOCKED`` and written in the same transaction (so the rows cannot
        change between being read and re-embedded): workers take different batches, readers
        and tasks never wait, an edit of a claimed item waits for this one batch. An error of
        ``embed`` rolls the batch back, untouched."""
        async with self.db.transaction() as conn:
            rows = await conn.fetch(QUERIES["memory_stale_embeddings"], model, limit)
            if not rows:
                return 0
            vectors = await embed([r["content"] for r in rows])
            if len(vectors) != len(rows):
                raise InvalidInput("the embedder returned a vector count unlike the texts'")
            done = await conn.fetch(
                QUERIES["memory_set_embeddings"],
                [r["id"] for r in rows],
                [vector_text(v) for v in vectors],
                model,
            )
            await conn.executemany(
                QUERIES["memory_history_add"],
                [
                    (
                        r["tenant_id"],
                        r["id"],
                        "system",
                        "re-embedded",
                        None,
                        None,
                        {"embedding_model": model},
                    )
                    for r in done
                ],
            )
            return len(done)

    async def stale_count(self, model: str) -> int:
        """How many live items are not (yet) embedded by ``model``."""
        count: int = await self.db.fetchval(QUERIES["memory_stale_count"], model)
        return count

    # -- policies -------------------------------------------------------------------------

    async def auto_activate(self, tenant_id: str, agent: str | None) -> bool | None:
        """The policy for lessons of ``agent`` (its own, else the tenant's); None: unset."""
        value: bool | None = await self.db.fetchval(QUERIES["memory_policy_get"], tenant_id, agent)
        return value

    async def set_policy(
        self, tenant_id: str, agent: str | None, auto_activate: bool
    ) -> dict[str, Any]:
        row = await self.db.fetchrow(QUERIES["memory_policy_set"], tenant_id, agent, auto_activate)
        return dict(row) if row is not None else {}

    async def policies(self, tenant_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.db.fetch(QUERIES["memory_policy_list"], tenant_id)]

    # -- internals ------------------------------------------------------------------------

    async def _locked(
        self, conn: asyncpg.Connection, tenant_id: str, memory_id: uuid.UUID
    ) -> MemoryItem:
        row = await conn.fetchrow(QUERIES["memory_get_for_update"], tenant_id, memory_id)
        if row is None:
            raise MemoryNotFound(memory_id)
        return MemoryItem.from_row(row)

    @staticmethod
    async def _log(  # noqa: PLR0917 - one argument per history column
        conn: asyncpg.Connection,
        tenant_id: str,
        memory_id: uuid.UUID,
        actor: str,
        action: str,
        reason: str | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        await conn.execute(
            QUERIES["memory_history_add"],
            tenant_id,
            memory_id,
            actor,
            action,
            reason,
            before,
            after,
        )

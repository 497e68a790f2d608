"""The memory service ``PROCESSGPT_MEMORY_*`` describes (for the composition root)."""

from __future__ import annotations

from processgpt.config import MemorySettings
from processgpt.db.database import Database
from processgpt.db.memories import MemoryRepository
from processgpt.memory.embedder import configured_embedder
from processgpt.memory.service import MemoryOptions, MemoryService


def memory_options(settings: MemorySettings) -> MemoryOptions:
    return MemoryOptions(
        threshold=settings.threshold,
        context_items=settings.context_items,
        pinned_items=settings.pinned_items,
        context_tokens=settings.context_tokens,
        auto_activate=settings.auto_activate,
    )


def memory_service(db: Database, settings: MemorySettings) -> MemoryService:
    """The memory service with the embedder ``settings`` name."""
    key = settings.embeddings_api_key
    embedder = configured_embedder(
        settings.embedder,
        url=settings.embeddings_url,
        model=settings.embeddings_model,
        api_key=key.get_secret_value() if key else None,
    )
    return MemoryService(MemoryRepository(db), embedder, memory_options(settings))

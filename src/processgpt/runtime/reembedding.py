"""Re-embedding in the background: items stored with another embedding model than the
configured one (an operator changed ``PROCESSGPT_MEMORY_EMBEDDER`` or its model) get vectors
of the configured model, batch by batch, on any worker that runs this loop.

A pass starts when the worker starts and goes on while batches come back full; then the
loop looks again every ``interval`` seconds (one index probe: items written meanwhile by
processes still on the old model, during a rolling change, are found there). Batches are
claimed with ``SKIP LOCKED`` (:meth:`~processgpt.db.memories.MemoryRepository.reembed_stale`)
and fenced on the model, so several workers share the work and a batch applied twice
changes nothing. Tasks never wait for it: searches meanwhile compare vectors of the query's
model only and find the other items by full text (see the ``memory_search`` query).

Every process of a deployment must name the same model: two models configured at once
would re-embed each other's items back and forth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from processgpt.domain.errors import DatabaseUnavailable, ProcessGPTError, RetryLater
from processgpt.memory.service import MemoryService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReembedOptions:
    batch: int = 16
    """Items per batch (one transaction, one embedder call)."""
    interval: float = 60.0
    """Seconds between looks once nothing is left."""
    retry_delay: float = 5.0
    """Seconds to wait after a failed batch (the endpoint or the database is away)."""


class ReembedLoop:
    """Re-embeds stale items until :meth:`stop` (see the module)."""

    def __init__(self, memory: MemoryService, options: ReembedOptions | None = None) -> None:
        self.memory = memory
        self.options = options or ReembedOptions()
        self.reembedded = 0
        """Items this loop re-embedded (for tests and logs)."""
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            delay = self.options.interval
            try:
                done = await self.memory.reembed(self.options.batch)
            except (RetryLater, DatabaseUnavailable) as exc:  # away for a while
                log.warning("re-embedding postponed error=%s message=%s", exc.code, exc.message)
                delay = self.options.retry_delay
            except Exception as exc:  # noqa: BLE001 - logged; the batch is rolled back, retried
                code = exc.code if isinstance(exc, ProcessGPTError) else type(exc).__name__
                log.warning("re-embedding failed error=%s", code)
            else:
                if done:
                    self.reembedded += done
                    log.info("memory re-embedded items=%d model=%s", done, self.memory.model)
                if done >= self.options.batch:
                    await asyncio.sleep(0)  # let the tasks' own work run between batches
                    continue
            await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        if self._stopping:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

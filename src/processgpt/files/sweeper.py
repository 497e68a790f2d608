"""Bytes without a file row: deleting the bytes of files retention removed, and sweeping the
storage for orphans.

A file's row is written after its bytes and deleted before them (:mod:`processgpt.files.
service`), so a crash, a lost connection or a storage error between the two can leave bytes
that no row names, never a row without bytes. :func:`sweep_orphans` finds those: it lists the
storage, asks the database which keys a row names (a batch at a time, through the unique
``(storage, storage_key)`` index) and deletes the others once they are older than a grace
period (an upload in flight has written its bytes but not yet its row). Retention runs it
at the end of every pass (one pass at a time per deployment).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from processgpt.db.files import FileRepository
from processgpt.domain.errors import StorageUnavailable
from processgpt.files.storage import FileStorage, StoredObject

log = logging.getLogger(__name__)

BATCH = 500
"""Keys looked up in the database at a time."""


@dataclass
class Swept:
    seen: int = 0
    """Objects the storage holds."""
    deleted: int = 0
    """Orphans deleted."""
    failed: int = 0
    """Orphans the storage failed to delete (found again by the next sweep)."""


async def forget_bytes(storage: FileStorage, keys: Iterable[tuple[str, str]]) -> int:
    """Delete the bytes of removed file rows (``(storage name, key)`` pairs); how many could
    not be deleted. Bytes in another storage than ``storage`` are left (and logged): the
    sweeper of a process configured with that storage removes them. A failure is logged and
    left to the sweeper too: the rows are gone, so the bytes are orphans it will find."""
    failed = 0
    for name, key in keys:
        if name != storage.name:
            log.warning("file bytes left in another storage storage=%s key=%s", name, key)
            failed += 1
            continue
        try:
            await storage.delete(key)
        except StorageUnavailable:
            log.warning("file bytes not deleted key=%s (the orphan sweep retries)", key)
            failed += 1
    return failed


async def sweep_orphans(repo: FileRepository, storage: FileStorage, *, grace: float) -> Swept:
    """Delete the objects of ``storage`` that no file row names and that were last written
    more than ``grace`` seconds ago (see the module). :class:`StorageUnavailable` when the
    storage cannot be listed (nothing is deleted after that)."""
    swept = Swept()
    batch: list[StoredObject] = []
    async for item in storage.stored():
        swept.seen += 1
        batch.append(item)
        if len(batch) >= BATCH:
            await _sweep_batch(repo, storage, batch, grace, swept)
            batch = []
    if batch:
        await _sweep_batch(repo, storage, batch, grace, swept)
    if swept.deleted or swept.failed:
        log.info(
            "orphan file bytes swept storage=%s seen=%d deleted=%d failed=%d",
            storage.name,
            swept.seen,
            swept.deleted,
            swept.failed,
        )
    return swept


async def _sweep_batch(
    repo: FileRepository,
    storage: FileStorage,
    batch: list[StoredObject],
    grace: float,
    swept: Swept,
) -> None:
    cutoff = time.time() - grace
    old = [item.key for item in batch if item.modified < cutoff]
    if not old:
        return
    named = await repo.existing_keys(storage.name, old)
    for key in old:
        if key in named:
            continue
        try:
            await storage.delete(key)
        except StorageUnavailable:
            swept.failed += 1
        else:
            swept.deleted += 1

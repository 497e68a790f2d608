"""Retention: finished work leaves the database once its tenant's retention has passed.

A pass looks at every tenant whose work expires (``tenants.retention_days``, else the
deployment's default; 0 keeps it forever) and deletes, in batches of short transactions:

* top-level process instances that ended before the cutoff and whose whole tree (child
  instances, the tasks of any of them) ended before it too, with everything they own
  (tasks, events, history, timers, child instances);
* tasks outside process instances that finished (DONE, FAILED, CANCELLED) before the cutoff,
  with their events and chat turns;
* the files of those tasks and instances (rows in the batch's transaction, bytes through the
  storage backend right after it commits; a file a document names stays), the notifications
  written before the cutoff and the webhook deliveries that ended before it.

A pass ends with a sweep of the storage for orphan bytes, which no file row names (see
:mod:`~processgpt.files.sweeper`), left by a crash between writing bytes and their row or by
a failed deletion: retention's own included.

A task of an instance that still runs, and any task not finished, is never deleted. Rows are
taken ``FOR UPDATE SKIP LOCKED`` and only finished rows are taken, so claims never wait for a
pass (see ``db/queries/retention.sql``).

Every worker runs :meth:`RetentionJob.loop`; a pass runs in one process at a time across the
deployment (an advisory lock, see :class:`~processgpt.db.retention.RetentionRepository`):
the others find the lock taken and skip their turn. ``processgpt retention`` runs a pass (or,
with ``--dry-run``, counts what one would delete) from the command line.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from processgpt.db.files import FileRepository
from processgpt.db.retention import Removed, RetentionRepository, TenantCutoff
from processgpt.db.retry import retry_transient
from processgpt.domain.errors import StorageUnavailable
from processgpt.files.storage import FileStorage
from processgpt.files.sweeper import Swept, forget_bytes, sweep_orphans

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionOptions:
    default_days: int = 0
    """Days finished work is kept when its tenant sets no retention; 0: forever."""
    interval: float = 3600.0
    """Seconds between the passes of one worker; 0: this worker runs none."""
    batch: int = 1000
    """Tasks (or top-level instances) per transaction."""
    lock_timeout: float = 2.0
    """Seconds a batch may wait for a row lock before it gives up (tried again later)."""
    orphan_grace: float = 3600.0
    """Seconds bytes without a file row are left alone (an upload writes its row after its
    bytes) before the sweep deletes them."""


class RetentionJob:
    def __init__(
        self,
        repo: RetentionRepository,
        options: RetentionOptions,
        storage: FileStorage | None = None,
    ) -> None:
        """``storage``: where files' bytes are (None: deleted files' bytes are left, and no
        sweep runs; a process without it must not run passes in a deployment with files)."""
        self.repo = repo
        self.options = options
        self.storage = storage
        self.passes = 0
        """Passes this job ran to the end (for tests and logs)."""
        self.swept: Swept | None = None
        """What the last pass's sweep found (None before one ran)."""

    async def run_once(self) -> dict[str, Removed] | None:
        """One pass: what it deleted per tenant (tenants with nothing expired left out), or
        None when another process's pass was running."""
        async with self.repo.exclusive(lock_timeout=self.options.lock_timeout) as session:
            if session is None:
                return None
            removed: dict[str, Removed] = {}
            for cutoff in await self.repo.cutoffs(self.options.default_days):
                gone = Removed()
                async for batch in session.delete_instances(cutoff, self.options.batch):
                    gone.add(batch)
                    await self._forget(batch)
                async for batch in session.delete_tasks(cutoff, self.options.batch):
                    gone.add(batch)
                    await self._forget(batch)
                async for batch in session.delete_notices(cutoff, self.options.batch):
                    gone.add(batch)
                if not gone.empty:
                    removed[cutoff.tenant_id] = gone
                    _log_removed(cutoff, gone)
            await self._sweep()
            self.passes += 1
            return removed

    async def _forget(self, batch: Removed) -> None:
        """The bytes of the files a committed batch deleted."""
        if batch.file_keys and self.storage is not None:
            await forget_bytes(self.storage, batch.file_keys)

    async def _sweep(self) -> None:
        if self.storage is None:
            return
        try:
            self.swept = await sweep_orphans(
                FileRepository(self.repo.db), self.storage, grace=self.options.orphan_grace
            )
        except StorageUnavailable:
            # Logged by the storage; the orphans are found by the next pass's sweep.
            log.warning("orphan file sweep skipped: the storage could not be listed")

    async def preview(self) -> dict[str, tuple[TenantCutoff, Removed]]:
        """What a pass would delete now, per tenant whose work expires (nothing deleted)."""
        return {
            cutoff.tenant_id: (cutoff, await self.repo.preview(cutoff))
            for cutoff in await self.repo.cutoffs(self.options.default_days)
        }

    async def loop(self) -> None:
        """A pass, then one every ``interval`` seconds, until cancelled. Database errors
        (a lost connection, a batch that met a held lock) are logged and the pass is tried
        again with a backoff: what it deleted stays deleted, what it did not is found again."""
        while True:
            await retry_transient(self.run_once, what="deleting expired work")
            await asyncio.sleep(self.options.interval)


def _log_removed(cutoff: TenantCutoff, gone: Removed) -> None:
    log.info(
        "retention deleted tenant=%s before=%s tasks=%d events=%d instances=%d "
        "notifications=%d webhook_deliveries=%d files=%d",
        cutoff.tenant_id,
        cutoff.cutoff.isoformat(),
        gone.tasks,
        gone.events,
        gone.instances,
        gone.notifications,
        gone.deliveries,
        gone.files,
    )

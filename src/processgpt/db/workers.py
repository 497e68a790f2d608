"""The ``workers`` table: which worker processes run, what they serve, how busy they are.

A worker writes its own row (:meth:`WorkerRegistry.beat` at start and at every presence beat,
:meth:`WorkerRegistry.deregister` when it stops); the API reads the table
(:meth:`WorkerRegistry.list`, and :class:`ServedAgents` for the "no worker serves this agent"
warning on new tasks). A row whose heartbeat is older than :data:`LOST_AFTER` seconds is a
lost worker (killed, frozen, its host gone); every beat deletes rows lost for longer than
:data:`FORGET_AFTER` seconds, so the table stays as small as the fleet.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from processgpt.db.database import Database
from processgpt.db.retry import log_db_error
from processgpt.db.sql import QUERIES
from processgpt.domain.task import Task, TaskStatus, unserved_agent_warning

LOST_AFTER = 30.0
"""Seconds without a heartbeat after which a worker counts as lost (three presence beats)."""
FORGET_AFTER = 3600.0
"""Seconds without a heartbeat after which a lost worker's row is deleted."""
SERVED_CACHE_SECONDS = 2.0
"""How long :class:`ServedAgents` trusts that an agent is served before reading again."""


def package_version() -> str:
    try:
        return metadata.version("processgpt")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """What a worker says about itself in its row (all but its slots in use)."""

    id: str
    """The worker's consumer name: what ``todolist.consumer`` holds while it runs a task."""
    agents: tuple[str, ...]
    slots: int
    host: str = ""
    pid: int = 0
    version: str = ""

    @classmethod
    def of_this_process(cls, worker_id: str, agents: list[str], slots: int) -> WorkerIdentity:
        return cls(
            worker_id,
            tuple(agents),
            slots,
            host=socket.gethostname()[:255],
            pid=os.getpid(),
            version=package_version()[:100],
        )


class WorkerRegistry:
    """Reads and writes of the ``workers`` table (``db``: the caller's pool)."""

    def __init__(
        self, db: Database, *, lost_after: float = LOST_AFTER, forget_after: float = FORGET_AFTER
    ) -> None:
        self.db = db
        self.lost_after = lost_after
        self.forget_after = forget_after

    async def beat(self, me: WorkerIdentity, slots_in_use: int) -> None:
        """Write the worker's row (insert or refresh, heartbeat now), mark its orchestrators
        seen, and delete rows lost for longer than ``forget_after``: one statement."""
        await self.db.execute(
            QUERIES["worker_presence"],
            me.id,
            me.host,
            me.pid,
            me.version,
            list(me.agents),
            me.slots,
            slots_in_use,
            self.forget_after,
        )

    async def deregister(self, worker_id: str) -> None:
        await self.db.execute(QUERIES["deregister_worker"], worker_id)

    async def list(self) -> list[dict[str, Any]]:
        """Every row, the live first, each with ``lost`` (no heartbeat for ``lost_after``)."""
        rows = await self.db.fetch(QUERIES["list_workers"], self.lost_after)
        return [dict(row) for row in rows]

    async def served_agents(self) -> frozenset[str]:
        """The agents at least one live worker serves."""
        rows = await self.db.fetch(QUERIES["served_agents"], self.lost_after)
        return frozenset(row["agent"] for row in rows)


class ServedAgents:
    """Whether some live worker serves an agent, as the API asks on every task it creates.

    ``local``: agents a worker in this very process serves (``processgpt up``): served from
    the start, before that worker's first row is written. Otherwise a "served" answer is
    trusted for :data:`SERVED_CACHE_SECONDS`; a "not served" answer is read again every
    time (the table is tiny), so a worker that registered just before the request is never
    reported missing."""

    def __init__(
        self,
        registry: WorkerRegistry,
        *,
        local: frozenset[str] = frozenset(),
        cache_seconds: float = SERVED_CACHE_SECONDS,
    ) -> None:
        self._registry = registry
        self._local = local
        self._cache_seconds = cache_seconds
        self._served: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    async def serves(self, agent: str) -> bool:
        if agent in self._local:
            return True
        if agent in self._served and time.monotonic() - self._read_at < self._cache_seconds:
            return True
        read_at = time.monotonic()
        served = await self._registry.served_agents()
        if read_at >= self._read_at:  # a slower, older read must not replace a newer one
            self._served, self._read_at = served, read_at
        return agent in served

    async def warn(self, task: Task) -> Task:
        """``task`` with a warning when it is PENDING and no live worker serves its agent
        (the same task otherwise). The check is advice: when the database cannot answer it,
        the failure is logged and the task goes without the warning (its request has already
        done its work, which must not turn into an error)."""
        if task.status is not TaskStatus.PENDING:
            return task
        try:
            if await self.serves(task.agent_orch):
                return task
        except Exception as exc:  # noqa: BLE001 - logged; the warning is advice
            log_db_error("checking which agents live workers serve", exc)
            return task
        return task.model_copy(update={"warnings": [unserved_agent_warning(task.agent_orch)]})

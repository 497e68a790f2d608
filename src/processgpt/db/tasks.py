"""The task repository: every read and state change of ``todolist`` outside a worker batch."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import (
    InvalidInput,
    InvalidTransition,
    TaskNotFound,
    TooManyPending,
    UnknownAgent,
)
from processgpt.domain.events import Event
from processgpt.domain.task import Task, TaskStatus, TaskSubmission
from processgpt.metrics import TASKS

_TASK_FIELDS = frozenset(Task.model_fields)


def _list_tasks_queries() -> dict[TaskStatus | None, str]:
    """``list_tasks`` without a status filter, and one statement per status with the status
    written in as a literal: a bind parameter would let a cached generic plan ignore the
    partial index of that state (dead letters would be found by reading every task)."""
    marker = "AND true  -- status filter"
    text = QUERIES["list_tasks"]
    if marker not in text:
        raise RuntimeError("list_tasks lost its status filter marker")
    queries: dict[TaskStatus | None, str] = {None: text}
    for status in TaskStatus:
        queries[status] = text.replace(marker, f"AND status = '{status.value}'")
    return queries


_LIST_TASKS = _list_tasks_queries()


def list_tasks_query(status: TaskStatus | None) -> str:
    """The statement :meth:`TaskRepository.list_tasks` runs for ``status``."""
    return _LIST_TASKS[status]


def to_task(row: asyncpg.Record) -> Task:
    return Task.model_validate({k: v for k, v in row.items() if k in _TASK_FIELDS})


class TaskRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def submit(
        self,
        tenant_id: str,
        sub: TaskSubmission,
        *,
        known_agents: frozenset[str] = frozenset(),
        conn: asyncpg.Connection | None = None,
    ) -> tuple[Task, bool]:
        """Insert a PENDING task; return it and whether it was created (False: an earlier task
        with the same idempotency key is returned instead). Nothing is written on error.
        With ``conn``, the insert is part of the caller's transaction."""
        target: Any = conn if conn is not None else self.db
        agent_orch, profile = sub.agent_orch, None
        if sub.agent_orch not in known_agents:
            # A name of the tenant's agent profiles runs that profile (it wins over an
            # orchestrator registered later under the same name); built-ins are never profiles.
            found = await target.fetchrow(QUERIES["resolve_agent"], tenant_id, sub.agent_orch)
            if found["profile_orch"] is not None:
                agent_orch, profile = found["profile_orch"], sub.agent_orch
            elif not found["orch_exists"]:
                raise UnknownAgent(sub.agent_orch, await self.agent_names(tenant_id, known_agents))
        args = (
            tenant_id,
            agent_orch,
            sub.query,
            sub.input,
            sub.priority,
            sub.run_at,
            sub.max_attempts,
            sub.idempotency_key,
            sub.proc_inst_id,
            sub.activity_id,
            sub.activity_name,
            sub.user_id,
            sub.tool,
            sub.description,
            profile,
            sub.traceparent,
            sub.tracestate,
        )
        try:
            # A concurrent insert with the same key may commit after our snapshot: the second
            # round then sees it.
            for _ in range(2):
                row = await target.fetchrow(QUERIES["insert_task"], *args)
                if row is not None:
                    return to_task(row), bool(row["created"])
                if sub.idempotency_key is None:
                    break
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise InvalidInput(f"tenant {tenant_id!r} does not exist", field="tenant_id") from None
        except (asyncpg.exceptions.CheckViolationError, asyncpg.exceptions.DataError) as exc:
            raise InvalidInput(f"task refused by the schema: {exc.__class__.__name__}") from None
        raise InvalidInput(f"process instance {sub.proc_inst_id} not found", field="proc_inst_id")

    async def pending_count(
        self, tenant_id: str, default_limit: int, *, conn: asyncpg.Connection | None = None
    ) -> tuple[int, int]:
        """The tenant's pending tasks, counted no further than its limit, and that limit
        (``tenants.max_pending_tasks``, else ``default_limit``). Reads one index entry per
        pending task: see :class:`PendingGate` for the check to run on every create."""
        target: Any = conn if conn is not None else self.db
        row = await target.fetchrow(QUERIES["pending_count"], tenant_id, default_limit)
        assert row is not None
        return int(row["pending"]), int(row["max_pending"])

    async def by_idempotency_key(self, tenant_id: str, key: str) -> Task | None:
        row = await self.db.fetchrow(QUERIES["get_task_by_key"], tenant_id, key)
        return None if row is None else to_task(row)

    async def get(self, tenant_id: str, task_id: uuid.UUID) -> Task:
        row = await self.db.fetchrow(QUERIES["get_task"], task_id, tenant_id)
        if row is None:
            raise TaskNotFound(task_id)
        return to_task(row)

    async def list_tasks(
        self,
        tenant_id: str,
        *,
        status: TaskStatus | None = None,
        agent_orch: str | None = None,
        proc_inst_id: uuid.UUID | None = None,
        before: tuple[datetime, uuid.UUID] | None = None,
        limit: int = 50,
        search: str | None = None,
    ) -> list[Task]:
        """Newest first; ``search`` keeps tasks whose query, activity name or agent holds
        it (case-insensitive), or whose id it is."""
        rows = await self.db.fetch(
            _LIST_TASKS[status],
            tenant_id,
            agent_orch,
            proc_inst_id,
            before[0] if before else None,
            before[1] if before else None,
            limit,
            search or None,
        )
        return [to_task(r) for r in rows]

    async def _transition(
        self, query: str, action: str, tenant_id: str, task_id: uuid.UUID, *args: Any
    ) -> Task:
        row = await self.db.fetchrow(QUERIES[query], task_id, tenant_id, *args)
        if row is None:
            current = await self.get(tenant_id, task_id)  # raises TaskNotFound
            if current.activation is not None and action in ("cancel", "requeue"):
                action += " a process step (cancel its process instance, or resolve its incident)"
            elif (
                current.proc_inst_id is not None
                and action == "cancel"
                and (current.status in (TaskStatus.PENDING, TaskStatus.IN_PROGRESS))
            ):
                action += " a process's judge task (cancel its process instance)"
            raise InvalidTransition(task_id, current.status, action)
        return to_task(row)

    async def cancel(self, tenant_id: str, task_id: uuid.UUID, reason: str = "cancelled") -> Task:
        """Cancel a task that has not ended. A running executor is told at once (NOTIFY)."""
        task = await self._transition("cancel_task", "cancel", tenant_id, task_id, reason)
        TASKS.cancelled(task.agent_orch)
        return task

    async def requeue(self, tenant_id: str, task_id: uuid.UUID) -> Task:
        """Queue a FAILED or CANCELLED task again, attempts reset."""
        return await self._transition("requeue_task", "requeue", tenant_id, task_id)

    async def answer(self, tenant_id: str, task_id: uuid.UUID, answer: Any) -> Task:
        """Answer a task waiting for human input; it is queued again with the answer."""
        return await self._transition("answer_task", "answer", tenant_id, task_id, answer)

    async def set_feedback(self, tenant_id: str, task_id: uuid.UUID, feedback: Any) -> Task:
        row = await self.db.fetchrow(QUERIES["set_feedback"], task_id, tenant_id, feedback)
        if row is None:
            raise TaskNotFound(task_id)
        return to_task(row)

    async def events(
        self, tenant_id: str, task_id: uuid.UUID, *, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        """A page of a task's event log, in order, after sequence number ``after``."""
        rows = await self.db.fetch(QUERIES["list_events"], task_id, tenant_id, after, limit)
        if not rows:
            await self.get(tenant_id, task_id)  # raises TaskNotFound for another tenant's task
        return [Event.model_validate(dict(r)) for r in rows]

    async def orchestrators(self) -> list[dict[str, Any]]:
        """Every orchestrator a worker has registered, with when a worker last served it."""
        return [dict(r) for r in await self.db.fetch(QUERIES["list_orchestrators"])]

    async def orchestrator_exists(self, name: str) -> bool:
        return bool(await self.db.fetchval(QUERIES["orchestrator_exists"], name))

    async def agent_exists(self, tenant_id: str | None, name: str) -> bool:
        """Whether ``name`` is a registered orchestrator or (with ``tenant_id``) one of the
        tenant's agent profiles."""
        row = await self.db.fetchrow(QUERIES["resolve_agent"], tenant_id, name)
        return row is not None and (row["profile_orch"] is not None or bool(row["orch_exists"]))

    async def agent_names(
        self, tenant_id: str | None, known_agents: frozenset[str] = frozenset()
    ) -> list[str]:
        """What a task may name as its agent: ``known_agents``, the registered orchestrators
        and (with ``tenant_id``) the tenant's agent profiles. For error messages."""
        rows = await self.db.fetch(QUERIES["agent_names"], tenant_id)
        return sorted(known_agents | {r["name"] for r in rows})


@dataclass(slots=True)
class _Counted:
    pending: int  # at the count
    limit: int
    until: float  # monotonic time the count may be relied on until
    allowance: int = 0  # creates admitted on this count without counting again
    admitted: int = 0  # creates admitted since the count, this process's only


class PendingGate:
    """Backpressure on task creation, shared by every route of an API process that creates
    tasks: ``async with gate.admit(tenant):`` raises :class:`TooManyPending` once a tenant has
    as many pending tasks as its limit, and otherwise holds the admission while the block
    creates the task and commits it.

    Counting a tenant's pending tasks reads one index entry per task, up to its limit (10,000
    by default), which made every create as slow as the backlog was long. A count no older than
    ``fresh_for`` seconds that left a headroom of H tasks admits up to H/2 creates before the
    next count: far from the limit a count serves thousands of creates, and approaching it the
    counts come at most about log2(limit) times. One count runs at a time per tenant, and the
    creates still in flight when it starts are added to it (the count may not see them yet),
    so this process's own creates never take the tenant past its limit. A refusal is
    remembered for ``refused_for`` seconds. Creates by other API processes go unseen between
    counts: the limit can be exceeded only if they create more than half the headroom this
    process last saw within ``fresh_for`` seconds.
    """

    def __init__(
        self,
        tasks: TaskRepository,
        default_limit: int,
        *,
        fresh_for: float = 1.0,
        refused_for: float = 0.25,
        max_tenants: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tasks = tasks
        self._clock = clock
        self._default_limit = default_limit
        self._fresh_for = fresh_for
        self._refused_for = refused_for
        self._max_tenants = max_tenants
        self._counted: OrderedDict[str, _Counted] = OrderedDict()
        self._counting: dict[str, asyncio.Future[None]] = {}
        self._in_flight: dict[str, int] = {}

    @asynccontextmanager
    async def admit(
        self, tenant_id: str, *, conn: asyncpg.Connection | None = None
    ) -> AsyncIterator[None]:
        """Admit one create for the tenant, or raise :class:`TooManyPending`. The block
        creates the task; leave it only once that is committed (or abandoned)."""
        await self._check(tenant_id, conn)
        self._in_flight[tenant_id] = self._in_flight.get(tenant_id, 0) + 1
        try:
            yield
        finally:
            left = self._in_flight[tenant_id] - 1
            if left:
                self._in_flight[tenant_id] = left
            else:
                del self._in_flight[tenant_id]

    async def _check(self, tenant_id: str, conn: asyncpg.Connection | None) -> None:
        while True:
            counted = self._counted.get(tenant_id)
            if counted is not None and self._clock() < counted.until:
                if counted.pending >= counted.limit:
                    raise TooManyPending(counted.pending, counted.limit)
                if counted.admitted < counted.allowance:
                    counted.admitted += 1
                    return
            counting = self._counting.get(tenant_id)
            if counting is None:
                break
            await asyncio.shield(counting)  # another create is counting: use its count
        done = self._counting[tenant_id] = asyncio.get_running_loop().create_future()
        try:
            in_flight = self._in_flight.get(tenant_id, 0)
            pending, limit = await self._tasks.pending_count(
                tenant_id, self._default_limit, conn=conn
            )
        finally:
            del self._counting[tenant_id]
            done.set_result(None)
        pending += in_flight  # created, maybe not committed yet: not always in the count
        refused = pending >= limit
        self._counted[tenant_id] = _Counted(
            pending,
            limit,
            self._clock() + (self._refused_for if refused else self._fresh_for),
            allowance=(limit - pending) // 2,
            admitted=0 if refused else 1,
        )
        self._counted.move_to_end(tenant_id)
        while len(self._counted) > self._max_tenants:
            self._counted.popitem(last=False)
        if refused:
            raise TooManyPending(pending, limit)

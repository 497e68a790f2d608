"""Backpressure on task creation against a real database: exact at the limit, without
counting the whole backlog on every create."""

from __future__ import annotations

import asyncio

import asyncpg

from processgpt.db.database import Database
from processgpt.db.tasks import PendingGate, TaskRepository
from processgpt.domain.errors import TooManyPending
from processgpt.domain.task import TaskSubmission

TENANT = "acme"
DEMO = frozenset({"demo"})


class CountingRepository(TaskRepository):
    """The real repository, counting how often the backlog is counted."""

    counts = 0

    async def pending_count(
        self, tenant_id: str, default_limit: int, *, conn: asyncpg.Connection | None = None
    ) -> tuple[int, int]:
        self.counts += 1
        return await super().pending_count(tenant_id, default_limit, conn=conn)


async def _pending(db: Database) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM todolist WHERE tenant_id = $1 AND status = 'PENDING'", TENANT
        )
    )


async def _create(gate: PendingGate, tasks: TaskRepository) -> bool:
    """One create through the gate, as the API makes it; False if refused."""
    try:
        async with gate.admit(TENANT):
            await tasks.submit(TENANT, TaskSubmission(agent_orch="demo"), known_agents=DEMO)
    except TooManyPending:
        return False
    return True


async def _create_until_refused(gate: PendingGate, tasks: TaskRepository) -> int:
    created = 0
    while await _create(gate, tasks):
        created += 1
    return created


async def test_creates_far_below_the_limit_are_admitted_without_counting(db: Database) -> None:
    await db.execute("INSERT INTO tenants (id, max_pending_tasks) VALUES ($1, 100)", TENANT)
    tasks = CountingRepository(db)
    gate = PendingGate(tasks, default_limit=10_000, fresh_for=60)
    created = await _create_until_refused(gate, tasks)
    # Exactly at the limit, never over it. Each count admits half the headroom it found:
    # 50, 25, 12, 6, 3, 2, 1 and 1 creates, then one count refuses.
    assert created == 100 and await _pending(db) == 100
    assert tasks.counts == 9


async def test_creates_by_others_are_seen_near_the_limit_and_once_the_count_is_stale(
    db: Database,
) -> None:
    await db.execute("INSERT INTO tenants (id, max_pending_tasks) VALUES ($1, 100)", TENANT)
    tasks = CountingRepository(db)
    now = [0.0]
    gate = PendingGate(
        tasks, default_limit=10_000, fresh_for=1, refused_for=0.25, clock=lambda: now[0]
    )
    async with gate.admit(TENANT):  # counted: 0 pending
        pass
    # Another API process creates 95 tasks meanwhile.
    await db.execute(
        "INSERT INTO todolist (tenant_id, agent_orch)"
        " SELECT $1, 'demo' FROM generate_series(1, 95)",
        TENANT,
    )
    async with gate.admit(TENANT):  # the count of 0 is still fresh: admitted unseen
        pass
    assert tasks.counts == 1
    now[0] += 1.0  # the count is stale
    created = await _create_until_refused(gate, tasks)
    assert created == 5 and await _pending(db) == 100
    # A refusal is remembered briefly (a tenant at its limit is not counted on every
    # create); then the tenant's new limit applies.
    await db.execute("UPDATE tenants SET max_pending_tasks = 101 WHERE id = $1", TENANT)
    counts = tasks.counts
    assert not await _create(gate, tasks)
    assert tasks.counts == counts
    now[0] += 0.25
    assert await _create(gate, tasks)
    assert not await _create(gate, tasks)


async def test_concurrent_creates_never_take_the_tenant_past_its_limit(db: Database) -> None:
    await db.execute("INSERT INTO tenants (id, max_pending_tasks) VALUES ($1, 100)", TENANT)
    await db.execute(
        "INSERT INTO todolist (tenant_id, agent_orch)"
        " SELECT $1, 'demo' FROM generate_series(1, 90)",
        TENANT,
    )
    tasks = TaskRepository(db)
    gate = PendingGate(tasks, default_limit=10_000, fresh_for=60, refused_for=0)
    results = await asyncio.gather(*(_create(gate, tasks) for _ in range(50)))
    # One count at a time, and creates in flight count against the limit: never over it.
    assert 0 < sum(results) <= 10
    assert await _pending(db) == 90 + sum(results)
    # At rest nothing is in flight: the remaining room is used up exactly.
    assert sum(results) + await _create_until_refused(gate, tasks) == 10
    assert await _pending(db) == 100

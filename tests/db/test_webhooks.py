"""db/webhooks.py against a real Postgres: the delivery claim is fair (per-endpoint and
per-tenant caps on attempts in flight hold across concurrent claims, tenants take turns, one
endpoint's backlog is not walked), the wake-up time skips endpoints at their cap, and a
rotation keeps the replaced secret (sealed) signing for the overlap."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from processgpt.db.database import Database
from processgpt.db.secret_box import SecretBox, new_key
from processgpt.db.tenants import TenantRepository
from processgpt.db.webhooks import WebhookRepository, rotate_webhook_secrets
from processgpt.domain.webhooks import AttemptResult, Decision, Verdict

OLD_KEY = new_key()
BOX = SecretBox([OLD_KEY])


@pytest.fixture
async def repo(db: Database) -> WebhookRepository:
    for tenant in ("acme", "globex", "initech"):
        await TenantRepository(db).ensure(tenant)
    return WebhookRepository(db, BOX, rotation_overlap=3600)


async def backlog(db: Database, tenant: str, n: int) -> None:
    """``n`` events of ``tenant``, through the triggers' own function (0024): one delivery
    per enabled endpoint of the tenant each."""
    await db.execute(
        """SELECT processgpt_emit($1, 'task.completed', jsonb_build_object('n', i),
                                  NULL, NULL, NULL, NULL, NULL, NULL)
           FROM generate_series(1, $2) AS i""",
        tenant,
        n,
    )


async def test_a_backlog_of_one_endpoint_leaves_room_for_the_others(
    db: Database, repo: WebhookRepository
) -> None:
    slow = await repo.create("acme", "https://slow.example/a", [])
    await backlog(db, "acme", 1000)
    fast = await repo.create("globex", "https://fast.example/b", [])
    await backlog(db, "globex", 1)
    # globex's one delivery is newer than all 1,000 of acme's, and still in the first claim.
    claimed = await repo.claim(16, 30.0, per_endpoint=4, per_tenant=8)
    by_endpoint = Counter(d.endpoint_id for d in claimed)
    assert by_endpoint == {slow.id: 4, fast.id: 1}
    # acme's attempts in flight hold it at its cap: the next claims find nothing of it ...
    assert await repo.claim(16, 30.0, per_endpoint=4, per_tenant=8) == []
    # ... and the loop is not woken for it before a lease ends (no polling on a backlog).
    wait = await repo.seconds_until_next(4, 8)
    assert wait is not None and 25 < wait <= 30
    # An attempt that ends frees one place, for acme's next oldest delivery.
    first = next(d for d in claimed if d.endpoint_id == slow.id)
    assert await repo.record(
        first, AttemptResult(error="timed out"), Decision(Verdict.RETRY, 60.0), "now"
    )
    again = await repo.claim(16, 30.0, per_endpoint=4, per_tenant=8)
    assert [d.endpoint_id for d in again] == [slow.id]
    assert again[0].id not in {d.id for d in claimed} and again[0].attempts == 1


async def test_tenants_take_turns_and_a_tenant_is_capped_across_its_endpoints(
    db: Database, repo: WebhookRepository
) -> None:
    acme = [await repo.create("acme", f"https://a{i}.example/", []) for i in range(3)]
    await backlog(db, "acme", 50)
    await repo.create("globex", "https://g.example/", [])
    await backlog(db, "globex", 50)
    # 3 acme endpoints x 4 = 12 would be allowed per endpoint; the tenant cap is 6. Turns:
    # the 8 places alternate between the tenants (4 each), not the oldest-first 8 of acme.
    claimed = await repo.claim(8, 30.0, per_endpoint=4, per_tenant=6)
    assert Counter(d.tenant_id for d in claimed) == {"acme": 4, "globex": 4}
    # acme's 4 are spread over its endpoints (the least busy endpoint goes first).
    assert max(Counter(d.endpoint_id for d in claimed if d.tenant_id == "acme").values()) <= 2
    more = await repo.claim(100, 30.0, per_endpoint=4, per_tenant=6)
    assert Counter(d.tenant_id for d in more) == {"acme": 2}
    in_flight = Counter(d.endpoint_id for d in claimed + more)
    assert sum(in_flight[e.id] for e in acme) == 6


async def test_caps_hold_when_many_workers_claim_at_once(
    db: Database, repo: WebhookRepository
) -> None:
    endpoint = await repo.create("acme", "https://one.example/", [])
    await backlog(db, "acme", 200)
    rounds = await asyncio.gather(
        *(repo.claim(5, 30.0, per_endpoint=3, per_tenant=8) for _ in range(12))
    )
    ids = [d.id for claimed in rounds for d in claimed]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert {d.endpoint_id for claimed in rounds for d in claimed} == {endpoint.id}


async def test_a_lease_that_ended_no_longer_counts_in_flight(
    db: Database, repo: WebhookRepository
) -> None:
    await repo.create("acme", "https://one.example/", [])
    await backlog(db, "acme", 2)
    # A sender that died mid-attempt: its lease (0.2 s) ends, its deliveries are due again.
    dead = await repo.claim(10, 0.2, per_endpoint=2, per_tenant=8)
    assert len(dead) == 2
    assert await repo.claim(10, 30.0, per_endpoint=2, per_tenant=8) == []
    await asyncio.sleep(0.3)
    again = await repo.claim(10, 30.0, per_endpoint=2, per_tenant=8)
    assert {d.id for d in again} == {d.id for d in dead}
    assert all(d.attempts == 2 for d in again)
    # The dead sender's late record is stale: it changes nothing.
    assert not await repo.record(dead[0], AttemptResult(200), Decision(Verdict.DELIVERED), "x")


async def test_a_rotation_keeps_the_old_secret_signing_for_the_overlap(
    db: Database, repo: WebhookRepository
) -> None:
    made = await repo.create("acme", "https://one.example/", [])
    assert made.previous_secret_until is None
    rotated = await repo.rotate_secret("acme", made.id)
    assert rotated.secret != made.secret and rotated.previous_secret_until is not None
    # Both are stored sealed: neither secret is in the row's text.
    row = await db.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1", made.id)
    assert made.secret not in str(dict(row)) and rotated.secret not in str(dict(row))
    shown = await repo.get("acme", made.id)
    assert shown.secret.endswith(rotated.secret[-4:]) and shown.previous_secret_until
    await backlog(db, "acme", 1)
    [delivery] = await repo.claim(1, 30.0)
    assert (delivery.secret, delivery.previous_secret) == (rotated.secret, made.secret)

    # Re-encrypting the deployment's secrets (``processgpt secrets rotate``) keeps both.
    fresh = new_key()
    assert await rotate_webhook_secrets(db, SecretBox([fresh, OLD_KEY])) == 1
    moved = WebhookRepository(db, SecretBox([fresh]))
    await backlog(db, "acme", 1)
    [later] = await moved.claim(1, 30.0)
    assert (later.secret, later.previous_secret) == (rotated.secret, made.secret)

    # A second rotation: the first secret stops signing, the second overlaps the third.
    third = await moved.rotate_secret("acme", made.id)
    await backlog(db, "acme", 1)
    [last] = await moved.claim(1, 30.0)
    assert (last.secret, last.previous_secret) == (third.secret, rotated.secret)


async def test_the_overlap_ends(db: Database, repo: WebhookRepository) -> None:
    made = await repo.create("acme", "https://one.example/", [])
    short = WebhookRepository(db, BOX, rotation_overlap=0.2)
    rotated = await short.rotate_secret("acme", made.id)
    await asyncio.sleep(0.3)
    await backlog(db, "acme", 1)
    [delivery] = await repo.claim(1, 30.0)
    assert (delivery.secret, delivery.previous_secret) == (rotated.secret, None)
    assert (await repo.get("acme", made.id)).previous_secret_until is None
    # No overlap configured: the replaced secret stops at once.
    none = WebhookRepository(db, BOX, rotation_overlap=0)
    newest = await none.rotate_secret("acme", made.id)
    assert newest.previous_secret_until is None
    await backlog(db, "acme", 1)
    [after] = await repo.claim(1, 30.0)
    assert (after.secret, after.previous_secret) == (newest.secret, None)


async def test_another_tenants_endpoint_cannot_be_rotated(repo: WebhookRepository) -> None:
    made = await repo.create("acme", "https://one.example/", [])
    from processgpt.domain.errors import WebhookNotFound  # noqa: PLC0415

    with pytest.raises(WebhookNotFound):
        await repo.rotate_secret("globex", made.id)
    with pytest.raises(WebhookNotFound):
        await repo.rotate_secret("acme", uuid.uuid4())

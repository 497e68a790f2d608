"""Webhook endpoints per tenant and the outbox of their deliveries (migration 0024).

Deliveries are written by the database's triggers in the transaction of the change that
causes them; this module makes and reads endpoints (their secrets sealed by the
:class:`~processgpt.db.secret_box.SecretBox`, opened only for a sender) and gives senders
their claims (:meth:`WebhookRepository.claim`) and records (:meth:`WebhookRepository.record`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from processgpt.db.database import Database
from processgpt.db.secret_box import SecretBox
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import InvalidInput, TooManyWebhooks, WebhookNotFound
from processgpt.domain.webhooks import (
    AttemptResult,
    Decision,
    Verdict,
    check_event_types,
    mask_secret,
    message_id,
    new_secret,
)
from processgpt.protocols.webhooks import DeliveryView, WebhookView

WEBHOOKS_CHANNEL = "processgpt_webhooks"
"""NOTIFY channel: deliveries became due (empty payload)."""


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery claimed for one attempt: its ``attempts`` is this attempt's number (the
    fence of :meth:`WebhookRepository.record`); ``secret`` is the opened signing secret and
    ``previous_secret`` the one a rotation replaced, while its overlap lasts (the attempt is
    signed with both)."""

    id: uuid.UUID
    tenant_id: str
    endpoint_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    attempts: int
    url: str
    secret: str
    previous_secret: str | None = None

    @property
    def webhook_id(self) -> str:
        return message_id(self.id)

    def body(self) -> bytes:
        """The request body: the same bytes for every attempt of the delivery."""
        return json.dumps(self.payload, separators=(",", ":"), sort_keys=True).encode()


class WebhookRepository:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        max_per_tenant: int = 20,
        rotation_overlap: float = 86400.0,
    ) -> None:
        """``rotation_overlap``: seconds a rotated-out secret keeps signing beside the new one."""
        self.db = db
        self.box = box
        self.max_per_tenant = max_per_tenant
        self.rotation_overlap = rotation_overlap

    def _view(self, row: Mapping[str, Any], secret: str | None = None) -> WebhookView:
        shown = secret if secret is not None else mask_secret(self.box.open(row["secret"]))
        return WebhookView(
            id=row["id"],
            url=row["url"],
            event_types=list(row["event_types"]),
            description=row["description"],
            enabled=row["enabled"],
            disabled_reason=row["disabled_reason"],
            secret=shown,
            previous_secret_until=_still_signing(row),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    # -- endpoints --------------------------------------------------------------------------

    async def create(
        self,
        tenant_id: str,
        url: str,
        event_types: list[str],
        *,
        description: str = "",
        enabled: bool = True,
    ) -> WebhookView:
        """Store an endpoint with a fresh secret; the view carries the whole secret (the only
        time it is shown). The caller checked the URL. :class:`TooManyWebhooks` when the
        tenant has ``max_per_tenant`` already."""
        types = check_event_types(event_types)
        secret = new_secret()
        sealed = self.box.seal(secret)
        try:
            async with self.db.transaction() as conn:
                await conn.execute(QUERIES["lock_tenant_webhooks"], tenant_id)
                count = await conn.fetchval(QUERIES["count_webhooks"], tenant_id)
                if count >= self.max_per_tenant:
                    raise TooManyWebhooks(
                        f"the tenant has {count} webhook endpoints (limit {self.max_per_tenant})"
                    )
                row = await conn.fetchrow(
                    QUERIES["insert_webhook"], tenant_id, url, description, types, sealed, enabled
                )
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise InvalidInput(f"tenant {tenant_id!r} does not exist") from None
        return self._view(row, secret)

    async def get(self, tenant_id: str, endpoint_id: uuid.UUID) -> WebhookView:
        row = await self.db.fetchrow(QUERIES["get_webhook"], tenant_id, endpoint_id)
        if row is None:
            raise WebhookNotFound(endpoint_id)
        return self._view(row)

    async def endpoints(self, tenant_id: str) -> list[WebhookView]:
        rows = await self.db.fetch(QUERIES["list_webhooks"], tenant_id, self.max_per_tenant)
        return [self._view(r) for r in rows]

    async def update(
        self,
        tenant_id: str,
        endpoint_id: uuid.UUID,
        *,
        url: str | None = None,
        event_types: list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> WebhookView:
        types = None if event_types is None else check_event_types(event_types)
        async with self.db.transaction() as conn:
            before = await conn.fetchrow(QUERIES["lock_webhook"], tenant_id, endpoint_id)
            if before is None:
                raise WebhookNotFound(endpoint_id)
            row = await conn.fetchrow(
                QUERIES["update_webhook"], tenant_id, endpoint_id, url, description, types, enabled
            )
            if before["enabled"] and not row["enabled"]:
                await conn.execute(QUERIES["park_deliveries"], endpoint_id)
            elif row["enabled"] and not before["enabled"]:
                await conn.execute(QUERIES["resume_deliveries"], endpoint_id)
                await conn.execute(QUERIES["notify_webhooks"])
        return self._view(row)

    async def rotate_secret(self, tenant_id: str, endpoint_id: uuid.UUID) -> WebhookView:
        """A new secret for the endpoint, shown whole in the answer (the only time). Attempts
        from now on are signed with it and, for ``rotation_overlap`` seconds (the view's
        ``previous_secret_until``), with the secret it replaced too, so receivers switch
        without refusing a delivery. A secret replaced by an earlier rotation stops signing."""
        secret = new_secret()
        row = await self.db.fetchrow(
            QUERIES["rotate_webhook_secret"],
            tenant_id,
            endpoint_id,
            self.box.seal(secret),
            self.rotation_overlap,
        )
        if row is None:
            raise WebhookNotFound(endpoint_id)
        return self._view(row, secret)

    async def delete(self, tenant_id: str, endpoint_id: uuid.UUID) -> None:
        """Delete the endpoint and its deliveries (pending ones are not sent)."""
        if await self.db.fetchval(QUERIES["delete_webhook"], tenant_id, endpoint_id) is None:
            raise WebhookNotFound(endpoint_id)

    # -- deliveries -------------------------------------------------------------------------

    async def deliveries(
        self,
        tenant_id: str,
        endpoint_id: uuid.UUID,
        *,
        before: uuid.UUID | None = None,
        limit: int = 50,
    ) -> list[DeliveryView]:
        """The endpoint's deliveries, newest first (404 for another tenant's endpoint)."""
        await self.get(tenant_id, endpoint_id)
        rows = await self.db.fetch(
            QUERIES["list_deliveries"], tenant_id, endpoint_id, before, limit
        )
        return [_delivery_view(r) for r in rows]

    async def claim(
        self, limit: int, lease_seconds: float, *, per_endpoint: int = 4, per_tenant: int = 8
    ) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` due deliveries for one attempt each, with at most
        ``per_endpoint`` attempts in flight per endpoint and ``per_tenant`` per tenant across
        the deployment, tenants taking turns (see the query)."""
        async with self.db.transaction() as conn:
            await conn.execute(QUERIES["lock_delivery_claims"])
            rows = await conn.fetch(
                QUERIES["claim_deliveries"], limit, lease_seconds, per_endpoint, per_tenant
            )
        return [
            ClaimedDelivery(
                id=r["id"],
                tenant_id=r["tenant_id"],
                endpoint_id=r["endpoint_id"],
                event_type=r["event_type"],
                payload=r["payload"],
                attempts=r["attempts"],
                url=r["url"],
                secret=self.box.open(r["secret"]),
                previous_secret=(
                    self.box.open(r["previous_secret"]) if r["previous_secret"] else None
                ),
            )
            for r in rows
        ]

    async def record(
        self, delivery: ClaimedDelivery, result: AttemptResult, decision: Decision, at: str
    ) -> bool:
        """Record how the attempt ended; False when a later claim of the delivery made this
        one stale (nothing is written then). A 410 disables the endpoint and parks its other
        pending deliveries, in the same transaction."""
        entry: dict[str, Any] = {
            "attempt": delivery.attempts,
            "at": at,
            "duration_ms": result.duration_ms,
        }
        if result.status_code is not None:
            entry["status_code"] = result.status_code
        if result.error is not None:
            entry["error"] = result.error
        status = {
            Verdict.DELIVERED: "DELIVERED",
            Verdict.RETRY: "PENDING",
            Verdict.DEAD: "DEAD",
            Verdict.GONE: "DEAD",
        }[decision.verdict]
        error = None if decision.verdict is Verdict.DELIVERED else result.summary
        async with self.db.transaction() as conn:
            done = await conn.fetchval(
                QUERIES["record_delivery"],
                delivery.id,
                delivery.attempts,
                status,
                decision.delay or 0.0,
                entry,
                error,
            )
            if done is not None and decision.verdict is Verdict.GONE:
                await conn.execute(
                    QUERIES["disable_gone_webhook"],
                    delivery.endpoint_id,
                    "the receiver answered 410 Gone",
                )
                await conn.execute(QUERIES["park_deliveries"], delivery.endpoint_id)
        return done is not None

    async def seconds_until_next(self, per_endpoint: int = 4, per_tenant: int = 8) -> float | None:
        """Seconds until a claim may find a delivery (0 or less: now), None when nothing is
        pending; an endpoint (or tenant) at its cap counts from its first lease's end."""
        value: float | None = await self.db.fetchval(
            QUERIES["seconds_until_next_delivery"], per_endpoint, per_tenant
        )
        return value


def _still_signing(row: Mapping[str, Any]) -> datetime | None:
    """Until when the rotated-out secret signs beside the current one (None: it does not)."""
    until: datetime | None = row["previous_secret_until"]
    return until if until is not None and until > datetime.now(UTC) else None


def _delivery_view(row: Mapping[str, Any]) -> DeliveryView:
    return DeliveryView(
        id=row["id"],
        webhook_id=message_id(row["id"]),
        endpoint_id=row["endpoint_id"],
        event_type=row["event_type"],
        payload=row["payload"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"] if row["status"] == "PENDING" else None,
        attempt_log=list(row["attempt_log"]),
        last_error=row["last_error"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


async def rotate_webhook_secrets(db: Database, box: SecretBox) -> int:
    """Re-encrypt every endpoint's signing secrets (the current one and a rotated-out one
    still stored) with the box's first key (``processgpt secrets rotate``), in one
    transaction; how many endpoints changed. Raises ``secrets_unavailable``
    (nothing changed) when a secret was sealed with a key the box does not have."""
    changed = 0
    async with db.transaction() as conn:
        for row in await conn.fetch(QUERIES["lock_webhook_secrets"]):
            rotated = box.rotate(row["secret"])
            previous = row["previous_secret"]
            rotated_previous = box.rotate(previous) if previous is not None else None
            if rotated != row["secret"] or rotated_previous != previous:
                await conn.execute(
                    QUERIES["reseal_webhook_secret"], row["id"], rotated, rotated_previous
                )
                changed += 1
    return changed

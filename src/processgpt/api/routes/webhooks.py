"""``/v1/webhooks``: the tenant's webhook endpoints and their deliveries.

An endpoint has a URL and event types (none: every type). Its signing secret (``whsec_`` +
base64) is in the answer that creates it and in the answer of a rotation, and masked in
every other answer; it is stored encrypted. Deliveries are written by the database in the
transaction of the change that causes them and sent by the workers, signed per Standard
Webhooks (:mod:`processgpt.runtime.webhook_delivery`). Everything here needs a tenant admin's
credential, like the tenant's other configuration.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from processgpt.api.deps import AdminCaller, ServicesDep, WebhooksDep
from processgpt.api.errors import AUTHENTICATED, WITH_BODY, responses
from processgpt.domain.errors import InvalidInput, UrlNotAllowed
from processgpt.protocols.webhooks import (
    DeliveryPage,
    WebhookCreate,
    WebhookPage,
    WebhookPatch,
    WebhookView,
)
from processgpt.tools.netguard import InternalAddressRefused, NetworkPolicy

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/webhooks", tags=["webhooks"], responses=responses(*AUTHENTICATED, 403)
)


def check_url(policy: NetworkPolicy, url: str) -> None:
    """422 ``url_not_allowed`` for a URL that is not http(s) or whose host is an internal
    address (names are checked again, resolved, at every connection)."""
    try:
        policy.check_url(url)
    except InternalAddressRefused:
        raise UrlNotAllowed(
            "the url's host is an internal address (loopback, private, link-local…); webhook "
            "endpoints must be on public addresses unless the operator sets "
            "PROCESSGPT_WEBHOOK_ALLOW_PRIVATE",
            field="url",
        ) from None


@router.post("", status_code=201, responses=responses(*WITH_BODY, 409))
async def create_webhook(
    body: WebhookCreate, caller: AdminCaller, services: ServicesDep, repo: WebhooksDep
) -> WebhookView:
    """Make an endpoint. The answer holds the whole signing `secret`: keep it, it is never
    shown again (rotate it to get a new one). A URL on an internal address: 422
    `url_not_allowed`; the tenant has its most endpoints: 409 `too_many_webhooks`."""
    check_url(services.webhook_policy, body.url)
    made = await repo.create(
        caller.tenant_id,
        body.url,
        list(body.event_types),
        description=body.description,
        enabled=body.enabled,
    )
    log.info("webhook created tenant=%s endpoint=%s", caller.tenant_id, made.id)
    return made


@router.get("")
async def list_webhooks(caller: AdminCaller, repo: WebhooksDep) -> WebhookPage:
    """The tenant's endpoints, oldest first (secrets masked)."""
    return WebhookPage(items=await repo.endpoints(caller.tenant_id))


@router.get("/{endpoint_id}", responses=responses(404, 422))
async def get_webhook(
    endpoint_id: uuid.UUID, caller: AdminCaller, repo: WebhooksDep
) -> WebhookView:
    """One endpoint (404 `webhook_not_found` for another tenant's)."""
    return await repo.get(caller.tenant_id, endpoint_id)


@router.patch("/{endpoint_id}", responses=responses(*WITH_BODY, 404))
async def update_webhook(
    endpoint_id: uuid.UUID,
    body: WebhookPatch,
    caller: AdminCaller,
    services: ServicesDep,
    repo: WebhooksDep,
) -> WebhookView:
    """Change the URL, event types, description, or enable/disable the endpoint. A
    disabled endpoint (by this or by a 410 answer) keeps its pending deliveries; enabling
    it sends them."""
    if body.url is not None:
        check_url(services.webhook_policy, body.url)
    changed = await repo.update(
        caller.tenant_id,
        endpoint_id,
        url=body.url,
        event_types=None if body.event_types is None else list(body.event_types),
        description=body.description,
        enabled=body.enabled,
    )
    log.info(
        "webhook changed tenant=%s endpoint=%s enabled=%s",
        caller.tenant_id,
        endpoint_id,
        changed.enabled,
    )
    return changed


@router.post("/{endpoint_id}/rotate-secret", responses=responses(404, 422))
async def rotate_secret(
    endpoint_id: uuid.UUID, caller: AdminCaller, repo: WebhooksDep
) -> WebhookView:
    """A new signing secret, in this answer only; attempts from now on are signed with it
    and, until ``previous_secret_until`` (``PROCESSGPT_WEBHOOK_ROTATION_OVERLAP``, 24 h),
    with the secret it replaced too (two signatures in ``webhook-signature``)."""
    rotated = await repo.rotate_secret(caller.tenant_id, endpoint_id)
    log.info("webhook secret rotated tenant=%s endpoint=%s", caller.tenant_id, endpoint_id)
    return rotated


@router.delete("/{endpoint_id}", status_code=204, responses=responses(404, 422))
async def delete_webhook(
    endpoint_id: uuid.UUID, caller: AdminCaller, repo: WebhooksDep
) -> Response:
    """Delete the endpoint and its deliveries (pending ones are not sent)."""
    await repo.delete(caller.tenant_id, endpoint_id)
    log.info("webhook deleted tenant=%s endpoint=%s", caller.tenant_id, endpoint_id)
    return Response(status_code=204)


@router.get("/{endpoint_id}/deliveries", responses=responses(404, 422))
async def list_deliveries(
    endpoint_id: uuid.UUID,
    caller: AdminCaller,
    repo: WebhooksDep,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryPage:
    """The endpoint's deliveries, newest first, with their attempts (status code or
    error, duration); `next_cursor` pages on to older ones."""
    try:
        before = uuid.UUID(cursor) if cursor else None
    except ValueError:
        raise InvalidInput("cursor is not a cursor of this list", field="cursor") from None
    items = await repo.deliveries(caller.tenant_id, endpoint_id, before=before, limit=limit)
    next_cursor = str(items[-1].id) if len(items) == limit else None
    return DeliveryPage(items=items, next_cursor=next_cursor)

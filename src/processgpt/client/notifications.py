"""The ``/v1/notifications`` and ``/v1/webhooks`` calls of
:class:`~processgpt.client.ProcessGPTClient`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx

from processgpt.client.transport import ReconnectPolicy, StreamBroken, drop_none, error_of
from processgpt.protocols.sse import SSEDecoder
from processgpt.protocols.webhooks import (
    DeliveryPage,
    MarkedRead,
    NotificationPage,
    NotificationView,
    WebhookPage,
    WebhookView,
)


class _Requests(Protocol):
    reconnect: ReconnectPolicy
    _http: httpx.AsyncClient

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response: ...


class NotificationCalls:
    """Notifications of the key's tenant (``user``/``role``: whose, see the API) and its
    webhook endpoints (a tenant admin's key)."""

    async def notifications(
        self: _Requests,
        *,
        user: str | None = None,
        role: str | None = None,
        unread: bool = False,
        cursor: str | None = None,
        limit: int = 50,
    ) -> NotificationPage:
        params = drop_none(
            {"user": user, "role": role, "unread": unread, "cursor": cursor, "limit": limit}
        )
        response = await self._request("GET", "/v1/notifications", params=params)
        return NotificationPage.model_validate(response.json())

    async def mark_notification_read(self: _Requests, notification_id: int) -> NotificationView:
        response = await self._request("POST", f"/v1/notifications/{notification_id}/read")
        return NotificationView.model_validate(response.json())

    async def mark_notifications_read(
        self: _Requests, *, user: str | None = None, role: str | None = None
    ) -> int:
        params = drop_none({"user": user, "role": role})
        response = await self._request("POST", "/v1/notifications/read", params=params)
        return MarkedRead.model_validate(response.json()).marked

    async def follow_notifications(
        self: _Requests,
        *,
        user: str | None = None,
        role: str | None = None,
        after: str | None = None,
    ) -> AsyncIterator[NotificationView]:
        """New notifications as they commit, forever; a dropped connection resumes after
        the last one received (``Last-Event-ID``), so none is missed or repeated."""
        params = drop_none({"user": user, "role": role})
        last = after
        failures = 0
        timeout = httpx.Timeout(self._http.timeout.connect, read=self.reconnect.read_timeout)
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                async with self._http.stream(
                    "GET", "/v1/notifications/stream", params=params, headers=headers,
                    timeout=timeout,
                ) as response:  # fmt: skip
                    if response.status_code >= 400:
                        await response.aread()
                        raise error_of(response)
                    decoder = SSEDecoder()
                    async for chunk in response.aiter_bytes():
                        for frame in decoder.feed(chunk):
                            failures = 0
                            if frame.id:
                                last = frame.id
                            if frame.event == "notification" and frame.data:
                                yield NotificationView.model_validate(json.loads(frame.data))
                raise httpx.RemoteProtocolError("the notification stream ended")
            except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                failures += 1
                if failures > self.reconnect.max_retries:
                    raise StreamBroken(f"notifications: gave up ({exc!r})") from exc
                await asyncio.sleep(self.reconnect.delay(failures))

    async def create_webhook(
        self: _Requests, url: str, *, event_types: list[str] | None = None, description: str = ""
    ) -> WebhookView:
        """An endpoint; the answer's ``secret`` is the only time it is shown whole."""
        body = {"url": url, "event_types": event_types or [], "description": description}
        response = await self._request("POST", "/v1/webhooks", json=body)
        return WebhookView.model_validate(response.json())

    async def webhooks(self: _Requests) -> list[WebhookView]:
        response = await self._request("GET", "/v1/webhooks")
        return WebhookPage.model_validate(response.json()).items

    async def get_webhook(self: _Requests, endpoint_id: uuid.UUID | str) -> WebhookView:
        response = await self._request("GET", f"/v1/webhooks/{endpoint_id}")
        return WebhookView.model_validate(response.json())

    async def update_webhook(
        self: _Requests, endpoint_id: uuid.UUID | str, **changes: Any
    ) -> WebhookView:
        """Change ``url``, ``event_types``, ``description`` or ``enabled``."""
        response = await self._request("PATCH", f"/v1/webhooks/{endpoint_id}", json=changes)
        return WebhookView.model_validate(response.json())

    async def rotate_webhook_secret(self: _Requests, endpoint_id: uuid.UUID | str) -> WebhookView:
        response = await self._request("POST", f"/v1/webhooks/{endpoint_id}/rotate-secret")
        return WebhookView.model_validate(response.json())

    async def delete_webhook(self: _Requests, endpoint_id: uuid.UUID | str) -> None:
        await self._request("DELETE", f"/v1/webhooks/{endpoint_id}")

    async def webhook_deliveries(
        self: _Requests, endpoint_id: uuid.UUID | str, *, cursor: str | None = None, limit: int = 50
    ) -> DeliveryPage:
        params = drop_none({"cursor": cursor, "limit": limit})
        response = await self._request(
            "GET", f"/v1/webhooks/{endpoint_id}/deliveries", params=params
        )
        return DeliveryPage.model_validate(response.json())

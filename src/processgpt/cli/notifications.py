"""``notifications`` and ``webhooks``: the tenant's notifications and webhook endpoints over
the HTTP API (see :mod:`processgpt.cli.target` for which API; the API key decides the
tenant; webhooks need a tenant admin's key)."""

from __future__ import annotations

import argparse

from processgpt.cli.tasks import _client, _target
from processgpt.config import Settings
from processgpt.protocols.webhooks import NotificationView, WebhookView


def _note(n: NotificationView) -> str:
    who = n.user_id or (f"role:{n.role}" if n.role else "everyone")
    mark = " " if n.read else "*"
    return f"{n.id:>8} {mark} {n.created_at:%Y-%m-%d %H:%M:%S} {n.type:<16} {who:<20} {n.message}"


async def cmd_notifications(settings: Settings, args: argparse.Namespace) -> int:
    target = _target(settings, args)
    async with _client(target) as client:
        if args.read_all:
            marked = await client.mark_notifications_read(user=args.user, role=args.role)
            print(f"marked {marked} notification(s) read")
        elif args.read is not None:
            print(_note(await client.mark_notification_read(args.read)))
        elif args.follow:
            async for note in client.follow_notifications(user=args.user, role=args.role):
                print(_note(note), flush=True)
        else:
            page = await client.notifications(
                user=args.user, role=args.role, unread=args.unread, limit=args.limit
            )
            for note in page.items:
                print(_note(note))
    return 0


def _hook(w: WebhookView) -> str:
    state = "on " if w.enabled else "off"
    types = ",".join(w.event_types) or "all"
    why = f"  ({w.disabled_reason})" if w.disabled_reason else ""
    return f"{w.id}  {state} {w.url}  events={types}  secret={w.secret}{why}"


async def cmd_webhooks(settings: Settings, args: argparse.Namespace) -> int:
    target = _target(settings, args)
    async with _client(target) as client:
        if args.action == "create":
            made = await client.create_webhook(
                args.endpoint_url, event_types=args.event, description=args.description
            )
            print(_hook(made))
            print("keep the secret: it is not shown again")
        elif args.action == "list":
            for hook in await client.webhooks():
                print(_hook(hook))
        elif args.action in ("enable", "disable"):
            changed = await client.update_webhook(args.endpoint, enabled=args.action == "enable")
            print(_hook(changed))
        elif args.action == "rotate-secret":
            print(_hook(await client.rotate_webhook_secret(args.endpoint)))
            print("keep the secret: it is not shown again")
        elif args.action == "deliveries":
            page = await client.webhook_deliveries(args.endpoint, limit=args.limit)
            for d in page.items:
                print(
                    f"{d.id}  {d.status:<9} {d.event_type:<20} attempts={d.attempts} "
                    f"{d.created_at:%Y-%m-%d %H:%M:%S}  {d.last_error or ''}"
                )
        else:
            await client.delete_webhook(args.endpoint)
            print(f"webhook {args.endpoint} deleted")
    return 0

"""``processgpt memory ...``: the Agent Boss on the command line, over the HTTP API (the API
key decides the tenant; writes need an admin key). See :mod:`.memory_parser` for the
arguments."""

from __future__ import annotations

import argparse
from typing import Any

from processgpt.cli.common import CliError
from processgpt.cli.tasks import _client, _target
from processgpt.client import ProcessGPTClient
from processgpt.config import Settings
from processgpt.domain.memory import MemoryItem


def _scope(args: argparse.Namespace) -> dict[str, str | None]:
    return {
        name: getattr(args, name, None)
        for name in ("agent", "proc_def_id", "activity_id", "user_id")
    }


def _line(item: MemoryItem) -> str:
    scope = ",".join(f"{k}={v}" for k, v in item.scope.model_dump().items() if v) or "any"
    pin = "📌" if item.pinned else " "
    text = " ".join(item.content.split())
    return f"{item.id}  {item.status.value:<10} {item.kind.value:<10} {pin} [{scope}] {text}"


async def _run(client: ProcessGPTClient, args: argparse.Namespace) -> None:  # noqa: PLR0912
    action = args.action
    reason = getattr(args, "reason", None)
    if action == "teach":
        item = await client.teach(
            args.content,
            kind=args.kind,
            scope=_scope(args),
            pinned=args.pin,
            proposed=args.propose,
            original=args.original,
            expires_at=args.expires,
            reason=reason,
        )
        print(_line(item))
    elif action == "list":
        filters: dict[str, Any] = {**_scope(args), "status": args.status, "kind": args.kind}
        filters.update(limit=args.limit, pinned=True if args.pinned else None)
        for item in await client.list_memories(**filters):
            print(_line(item))
    elif action == "proposals":
        for item in await client.list_proposals():
            print(_line(item))
    elif action == "search":
        hits = await client.search_memories(
            args.query, scope=_scope(args), limit=args.limit, mode=args.mode
        )
        for hit in hits:
            print(f"{hit.score:.4f}  {_line(hit.item)}")
    elif action == "show":
        print((await client.get_memory(args.memory)).model_dump_json(indent=2))
    elif action == "history":
        for change in await client.memory_history(args.memory):
            why = f" ({change.reason})" if change.reason else ""
            print(f"{change.at.isoformat()}  {change.action:<11} by {change.actor}{why}")
    elif action == "correct":
        item = await client.supersede_memory(args.memory, args.content, reason=reason)
        print(f"superseded by {_line(item)}")
    elif action in ("pin", "unpin"):
        item = await client.update_memory(args.memory, pinned=action == "pin", reason=reason)
        print(_line(item))
    elif action == "retire":
        print(_line(await client.delete_memory(args.memory, reason)))
    elif action in ("approve", "reject"):
        print(_line(await client.decide_proposal(args.memory, action == "approve", reason)))
    elif action == "forget":
        scope = _scope(args)
        if not any(scope.values()) and not args.yes:
            raise CliError("invalid_input", "that is the tenant-wide scope: add --yes to delete it")
        print(f"deleted {await client.delete_memory_scope(scope, reason)}")
    elif action == "policy":
        policy = await client.set_memory_policy(args.mode == "auto", args.agent)
        print(f"policy agent={policy['agent'] or '*'} auto_activate={policy['auto_activate']}")
    else:  # used-by
        for use in await client.memories_used_by(args.task):
            print(f"{use['memory_id']}  {use['how']:<9} #{use['rank']}  {use['content']}")


async def cmd_memory(settings: Settings, args: argparse.Namespace) -> int:
    async with _client(_target(settings, args)) as client:
        await _run(client, args)
    return 0

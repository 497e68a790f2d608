"""``schedules create|list|show|enable|disable|delete``: the tenant's schedules over the HTTP
API (see :mod:`processgpt.cli.target` for which API; the API key decides the tenant).

A schedule is named on the command line by its id or its name. ``create`` takes a cron
expression (``--cron``, read in ``--timezone``) and either ``--process DEFINITION`` (with
``--version``, ``--var k=v``) or ``--agent AGENT`` with the task's ``QUERY`` (and
``--input JSON``).
"""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

from processgpt.cli.common import CliError, json_arg
from processgpt.cli.tasks import _client, _target
from processgpt.client import ProcessGPTClient
from processgpt.config import Settings
from processgpt.protocols.schedules import ScheduleView


def parse_vars(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` pairs as variables: ``v`` read as JSON when it is JSON (``3``, ``true``,
    ``{"a": 1}``), else as text."""
    variables: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise CliError("invalid_input", f"--var {pair!r} is not NAME=VALUE")
        try:
            variables[name] = json.loads(raw)
        except ValueError:
            variables[name] = raw
    return variables


def _line(s: ScheduleView) -> str:
    when = s.cron or s.cycle or "once"
    agent = (s.task or {}).get("agent_orch")
    what = f"process {s.proc_def_id}" if s.target == "process" else f"task for {agent}"
    state = "on " if s.enabled else "off"
    nxt = s.next_run_at.isoformat() if s.next_run_at else "-"
    return f"{s.id}  {state} {s.name:<24} {when:<16} {s.timezone:<16} next {nxt}  {what}"


async def _find(client: ProcessGPTClient, ref: str) -> ScheduleView:
    """The schedule of id or name ``ref``."""
    try:
        return await client.get_schedule(uuid.UUID(ref))
    except ValueError:
        pass
    after = ""
    while True:
        page = await client.list_schedules(after=after, limit=500)
        for schedule in page.items:
            if schedule.name == ref:
                return schedule
        if page.next_after is None:
            raise CliError("schedule_not_found", f"no schedule with id or name {ref!r}")
        after = page.next_after


async def _create(client: ProcessGPTClient, args: argparse.Namespace) -> ScheduleView:
    if (args.process is None) == (args.agent is None):
        raise CliError("invalid_input", "give exactly one of --process or --agent")
    if args.process is not None:
        process: dict[str, Any] = {"proc_def_id": args.process, "variables": parse_vars(args.var)}
        if args.version is not None:
            process["version"] = args.version
        return await client.create_schedule(
            args.name, args.cron, timezone=args.timezone, process=process, enabled=not args.disabled
        )
    if args.var or args.version is not None:
        raise CliError("invalid_input", "--var and --version go with --process")
    task: dict[str, Any] = {"agent_orch": args.agent, "query": args.query or ""}
    if args.input is not None:
        task["input"] = json_arg(args.input)
    return await client.create_schedule(
        args.name, args.cron, timezone=args.timezone, task=task, enabled=not args.disabled
    )


async def cmd_schedules(settings: Settings, args: argparse.Namespace) -> int:
    target = _target(settings, args)
    async with _client(target) as client:
        if args.action == "create":
            made = await _create(client, args)
            print(f"schedule {made.id} {made.name} created; next run {made.next_run_at}")
        elif args.action == "list":
            after = ""
            while True:
                page = await client.list_schedules(after=after, limit=500)
                for schedule in page.items:
                    print(_line(schedule))
                if page.next_after is None:
                    break
                after = page.next_after
        elif args.action == "show":
            print((await _find(client, args.schedule)).model_dump_json(indent=2))
        elif args.action in ("enable", "disable"):
            found = await _find(client, args.schedule)
            changed = await client.update_schedule(found.id, enabled=args.action == "enable")
            print(f"schedule {changed.id} {changed.name} {args.action}d")
        else:
            found = await _find(client, args.schedule)
            await client.delete_schedule(found.id)
            print(f"schedule {found.id} {found.name} deleted")
    return 0

"""``process start|show|list|cancel|message|resolve`` and ``worklist``: process instances and
people's work over the HTTP API (see :mod:`processgpt.cli.target` for which API), as
``submit`` and ``tasks`` do.

``--var k=v`` values are JSON when they parse as JSON (``days=3`` is a number,
``tags=["a"]`` a list, ``ok=true`` a boolean) and text otherwise (``name=Kim``); a dotted
key builds nested objects (``request_form.amount=5`` → ``{"request_form": {"amount": 5}}``).
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
from processgpt.domain.task import Task
from processgpt.protocols.process_views import HistoryLineView, ProcessDetail

HISTORY_SHOWN = 10
"""How many of the last history lines ``process show`` prints."""


def parse_vars(items: list[str] | None) -> dict[str, Any]:
    """The variables of repeated ``--var k=v`` (see the module)."""
    variables: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        path = key.strip().split(".")
        if not sep or not all(path):
            raise CliError("invalid_input", f"--var {item!r}: expected NAME=VALUE")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        target = variables
        for part in path[:-1]:
            found = target.setdefault(part, {})
            if not isinstance(found, dict):
                raise CliError("invalid_input", f"--var {item!r}: {part!r} is not an object")
            target = found
        target[path[-1]] = value
    return variables


def parse_roles(items: list[str] | None) -> dict[str, str]:
    """Role bindings of repeated ``--role ROLE=USER``."""
    roles: dict[str, str] = {}
    for item in items or []:
        role, sep, user = item.partition("=")
        if not sep or not role.strip() or not user.strip():
            raise CliError("invalid_input", f"--role {item!r}: expected ROLE=USER")
        roles[role.strip()] = user.strip()
    return roles


def _uuid(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise CliError("invalid_input", f"{text!r} is not a {what} id") from None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def task_line(task: Task) -> str:
    """One work item on a line: id, status, activity, who and when it is due."""
    who = " ".join(
        f"{k}={v}" for k, v in (("user", task.user_id), ("role", task.role)) if v is not None
    )
    due = f" due={task.due_at:%Y-%m-%d %H:%M}" if task.due_at is not None else ""
    name = task.activity_name or task.activity_id or task.query[:40]
    return f"{task.id}  {task.status:<11} {task.activity_id or '-':<16} {name!r} {who}{due}"


def history_line(line: HistoryLineView) -> str:
    data = _json(line.data)
    if len(data) > 160:
        data = data[:157] + "..."
    node = f" {line.node_id}" + (f"#{line.activation}" if line.activation else "")
    return f"{line.seq:>4} {line.at:%H:%M:%S} {line.kind:<18}{node if line.node_id else ''} {data}"


def print_instance(view: ProcessDetail) -> None:
    """The instance's summary: status, definition, where it waits, incidents, open tasks."""
    definition = f"{view.proc_def_id} v{view.version}" if view.proc_def_id else "(one-task form)"
    print(f"process {view.id} {view.status}  {definition}  {view.name!r}")
    print(f"waiting at: {', '.join(view.current_activity_ids) or '-'}")
    for incident in view.incidents:
        print(f"incident {incident.id} {incident.kind} at {incident.node_id}: {incident.reason}")
    for child in view.child_incidents:
        print(
            f"incident {child.id} of child {child.child_id} {child.kind} at {child.node_id}: "
            f"{child.reason} (resolve it there)"
        )
    for task in view.open_tasks:
        print(f"  open: {task_line(task)}")


async def _show(client: ProcessGPTClient, proc_inst_id: uuid.UUID) -> int:
    view = await client.get_process(proc_inst_id)
    print_instance(view)
    started = f"{view.start_date:%Y-%m-%d %H:%M:%S}" if view.start_date else "-"
    ended = f"{view.end_date:%Y-%m-%d %H:%M:%S}" if view.end_date else "-"
    print(f"started {started}  ended {ended}")
    print(f"variables: {_json(view.variables)}")
    lines: list[HistoryLineView] = []
    after = 0
    while True:  # the last lines: page through, keep the tail
        page = await client.history(proc_inst_id, after, limit=1000)
        lines = [*lines, *page.items][-HISTORY_SHOWN:]
        if len(page.items) < 1000:
            break
        after = page.next_after
    if lines:
        print(f"history (the last {len(lines)} of {lines[-1].seq} lines):")
        for line in lines:
            print(history_line(line))
    return 0


async def _start(client: ProcessGPTClient, args: argparse.Namespace) -> int:
    view = await client.start_instance(
        args.definition_id,
        version=args.version,
        variables=parse_vars(args.var),
        roles=parse_roles(args.role),
        name=args.name or "",
        idempotency_key=args.idempotency_key,
    )
    print_instance(view)
    return 0


async def _list(client: ProcessGPTClient, args: argparse.Namespace) -> int:
    async for inst in client.list_processes(
        proc_def_id=args.definition, status=args.status, limit=args.limit
    ):
        started = f"{inst.start_date:%Y-%m-%d %H:%M:%S}" if inst.start_date else "-"
        print(
            f"{inst.id}  {inst.status:<10} {inst.proc_def_id or '-'} v{inst.version or '-'}  "
            f"{started}  at={','.join(inst.current_activity_ids) or '-'}  {inst.name!r}"
        )
    return 0


async def cmd_instances(settings: Settings, args: argparse.Namespace) -> int:
    """``process start|show|list|cancel|message|resolve``."""
    target = _target(settings, args)
    proc_inst_id = None if args.action in ("start", "list") else _uuid(args.proc_inst_id, "process")
    async with _client(target) as client:
        if args.action == "start":
            return await _start(client, args)
        if args.action == "list":
            return await _list(client, args)
        assert proc_inst_id is not None
        if args.action == "show":
            return await _show(client, proc_inst_id)
        if args.action == "cancel":
            view = await client.cancel_process(proc_inst_id, args.reason or "")
        elif args.action == "message":
            payload = json_arg(args.payload) if args.payload is not None else {}
            if not isinstance(payload, dict):
                raise CliError("invalid_input", "--payload must be a JSON object")
            view = await client.send_message(proc_inst_id, args.name, payload)
        else:  # resolve
            view = await client.resolve_incident(
                proc_inst_id, args.incident_id, variables=parse_vars(args.var)
            )
        print_instance(view)
    return 0


async def cmd_worklist(settings: Settings, args: argparse.Namespace) -> int:
    target = _target(settings, args)
    async with _client(target) as client:
        async for task in client.worklist(user=args.user, role=args.role, limit=args.limit):
            print(f"{task_line(task)}  process={task.proc_inst_id}")
    return 0

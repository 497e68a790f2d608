"""``submit`` and ``tasks list|show|follow|cancel|requeue|answer|complete`` (``task`` is the
same command): over the HTTP API with
:class:`~processgpt.client.ProcessGPTClient`, never straight in the database, so they work
from any shell against any running instance (see :mod:`processgpt.cli.target`).

The tenant is the API key's. An API that does not answer is an error at once (connecting
times out after :data:`CONNECT_TIMEOUT` seconds), never a wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx

from processgpt.cli.common import (
    CliError,
    data_dir_of,
    event_line,
    json_arg,
    load_settings,
    task_json,
)
from processgpt.cli.target import Target, resolve_target
from processgpt.client import ApiError, ProcessGPTClient
from processgpt.config import ClientSettings, Settings
from processgpt.domain.task import Task, TaskStatus

CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 30.0
UNSERVED_CHECK_INTERVAL = 5.0
"""While a followed task is PENDING, how often to ask whether a worker serves its agent."""


def _target(settings: Settings, args: argparse.Namespace) -> Target:
    if args.tenant is not None:
        raise CliError(
            "invalid_input",
            f"--tenant does not apply to '{args.command}': the API key decides the tenant "
            "(use a key of that tenant: --api-key, or 'processgpt keys create --tenant T')",
        )
    env = load_settings(ClientSettings)
    return resolve_target(args.url, args.api_key, env, data_dir_of(settings))


@asynccontextmanager
async def _client(target: Target) -> AsyncIterator[ProcessGPTClient]:
    """A client of ``target``; transport errors become :class:`CliError` that say what to
    do, and API errors ``error: <code>: <message>``."""
    timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT)
    client = ProcessGPTClient(target.url, target.api_key, timeout=timeout)
    try:
        async with client:
            yield client
    except ApiError as exc:
        raise CliError(exc.code, exc.message) from None
    except httpx.TransportError as exc:
        raise CliError("api_unreachable", _unreachable(target, exc)) from None


def _refused(exc: BaseException) -> bool:
    """Whether a connection was refused somewhere in the chain (httpx reports
    "All connection attempts failed" over the ``ConnectionRefusedError``)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _unreachable(target: Target, exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        why = "connection refused" if _refused(exc) else f"cannot connect: {exc}"
    elif isinstance(exc, httpx.TimeoutException):
        why = "no answer in time"
    else:
        why = type(exc).__name__
    message = f"cannot reach the API at {target.url} ({why})"
    profile = target.profile
    if profile is not None and not profile.writer_running():
        message += (
            f"; {profile.path} was left by 'processgpt up' (pid {profile.pid}), which is no "
            "longer running: start it again"
        )
    elif profile is not None:
        message += f" (from {profile.path}); is 'processgpt up' still starting?"
    else:
        message += "; is it running? start one with 'processgpt up', or check --url"
    return message


async def _print_follow(
    client: ProcessGPTClient, task_id: uuid.UUID, *, warned: bool = False
) -> int:
    """Print the task's events until it ends or waits for input, then its state and result;
    exit status 0 when it is DONE or waits for input. While it waits in the queue for an
    agent no worker serves, say so once (stderr), unless ``warned`` already."""
    watcher = asyncio.create_task(_say_when_unserved(client, task_id, warned=warned))
    try:
        async for event in client.follow(task_id):
            print(event_line(event), flush=True)
    finally:
        # Not a TaskGroup: its ExceptionGroup would hide the follow's own error (ApiError)
        # from the code that turns it into a message.
        watcher.cancel()
        await asyncio.wait([watcher])
        failed = None if watcher.cancelled() else watcher.exception()
    if failed is not None:
        raise failed
    task = await client.get_task(task_id)
    print(f"task {task.id} {task.status}")
    if task.output is not None:
        print(json.dumps(task.output, ensure_ascii=False, indent=2))
    if task.error is not None:
        print(json.dumps(task.error, ensure_ascii=False, indent=2))
    return 0 if task.status in (TaskStatus.DONE, TaskStatus.INPUT_REQUIRED) else 1


async def _say_when_unserved(client: ProcessGPTClient, task_id: uuid.UUID, *, warned: bool) -> None:
    """While the task is PENDING, read its ``warnings`` (the API's: no live worker serves its
    agent); print them to stderr once, unless ``warned`` already, and stop checking."""
    while not warned:
        task = await client.get_task(task_id)
        if task.status != TaskStatus.PENDING:
            return
        _print_warnings(task)
        warned = bool(task.warnings)
        if not warned:
            await asyncio.sleep(UNSERVED_CHECK_INTERVAL)


def _print_warnings(task: Task) -> None:
    for warning in task.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)


async def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    target = _target(settings, args)
    fields: dict[str, Any] = {
        "input": json_arg(args.input) if args.input is not None else {},
        "priority": args.priority,
        "max_attempts": args.max_attempts,
        "idempotency_key": args.idempotency_key,
    }
    if not isinstance(fields["input"], dict):
        raise CliError("invalid_input", "--input must be a JSON object")
    if args.run_at:
        try:
            fields["run_at"] = datetime.fromisoformat(args.run_at)
        except ValueError:
            raise CliError("invalid_input", "--run-at must be an ISO 8601 time") from None
    async with _client(target) as client:
        task = await client.create_task(args.agent, args.query, **fields)
        print(f"task {task.id} {task.status}", flush=True)
        _print_warnings(task)
        if args.follow:
            return await _print_follow(client, task.id, warned=bool(task.warnings))
    return 0


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise CliError("invalid_input", f"{text!r} is not a task id") from None


async def _list(client: ProcessGPTClient, args: argparse.Namespace) -> int:
    async for t in client.list_tasks(status=args.status, agent_orch=args.agent, limit=args.limit):
        print(
            f"{t.id}  {t.status:<14} {t.agent_orch:<16} attempts={t.attempts}/"
            f"{t.max_attempts}  {t.created_at:%Y-%m-%d %H:%M:%S}  {t.query[:40]!r}"
        )
    return 0


async def _show(client: ProcessGPTClient, task_id: uuid.UUID) -> int:
    print(task_json(await client.get_task(task_id)))
    after = 0
    while True:
        page = await client.events(task_id, after)
        for event in page.items:
            print(event_line(event))
        if not page.items:
            return 0
        after = page.next_after


async def cmd_tasks(settings: Settings, args: argparse.Namespace) -> int:
    target = _target(settings, args)
    task_id = None if args.action == "list" else _uuid(args.task_id)
    answer = None
    if args.action == "answer":
        answer = json_arg(args.answer) if args.json else args.answer
    output = json_arg(args.output) if args.action == "complete" else None
    if args.action == "complete" and not isinstance(output, dict):
        raise CliError("invalid_input", "--output must be a JSON object (the form's values)")
    async with _client(target) as client:
        if task_id is None:
            return await _list(client, args)
        if args.action == "show":
            return await _show(client, task_id)
        if args.action == "follow":
            return await _print_follow(client, task_id)
        change: dict[str, Callable[[], Awaitable[Task]]] = {
            "cancel": lambda: client.cancel_task(task_id),
            "requeue": lambda: client.requeue_task(task_id),
            "answer": lambda: client.answer(task_id, answer),
            "complete": lambda: client.complete_task(
                task_id, output or {}, idempotency_key=args.idempotency_key
            ),
        }
        task = await change[args.action]()
        print(f"task {task.id} {task.status}")
    return 0

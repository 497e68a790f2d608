"""The ``processgpt`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from processgpt import logs
from processgpt.agents import registry
from processgpt.agents.a2a_adapter import A2ATaskRunner
from processgpt.app import (
    ProcessGPT,
    _signals_stop,
    open_database,
    run_command,
    worker_options,
)
from processgpt.config import Settings
from processgpt.db.agents import AgentProfileSpec, AgentRepository
from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database, redact_dsn
from processgpt.db.embedded import default_data_dir
from processgpt.db.migrate import current_version, migrate
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import ProcessGPTError
from processgpt.domain.events import Event
from processgpt.domain.task import Task, TaskStatus
from processgpt.runtime.run import TaskRunner
from processgpt.runtime.serving import tune_gc_for_serving
from processgpt.runtime.worker import Worker, WorkerOptions

if TYPE_CHECKING:
    from processgpt.api.server import ApiServer


class CliError(Exception):
    """A user-facing error: printed as ``error: <code>: <message>``, exit status 2."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError("invalid_json", f"not valid JSON: {exc}") from None


def _task_json(task: Task) -> str:
    return task.model_dump_json(indent=2)


def _event_line(event: Event) -> str:
    data = json.dumps(event.data, ensure_ascii=False)
    if len(data) > 200:
        data = data[:197] + "..."
    return f"{event.seq:>4} {event.timestamp:%H:%M:%S.%f} {event.event_type:<18} {data}"


# -- commands -----------------------------------------------------------------------------


async def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    db, _embedded = await open_database(settings, run_migrations=False)
    try:
        applied = await migrate(db)
        version = await current_version(db)
        print(f"schema at version {version} ({len(applied)} migration(s) applied)")
    finally:
        await db.close()
    return 0


def _runners(
    agents: Sequence[str], executor: str | None, blocking: bool | None
) -> tuple[dict[str, TaskRunner], dict[str, str]]:
    runners: dict[str, TaskRunner] = {}
    descriptions: dict[str, str] = {}
    if executor:
        if len(agents) != 1:
            raise CliError("invalid_input", "--executor needs exactly one --agent NAME")
        runners[agents[0]] = A2ATaskRunner(registry.create_executor(executor), blocking=blocking)
        return runners, descriptions
    for name in agents:
        runners[name] = A2ATaskRunner(registry.create_executor(name), blocking=blocking)
        descriptions[name] = registry.describe(name)
    return runners, descriptions


def _share_database_url(db: Database) -> None:
    """Executors that open connections of their own (the ``delegate`` tool) find the
    database in ``DATABASE_URL``; with the embedded default it is only known now."""
    os.environ.setdefault("DATABASE_URL", db.dsn)


def _worker_options(settings: Settings, args: argparse.Namespace) -> WorkerOptions:
    return worker_options(
        settings,
        concurrency=args.concurrency,
        lease_seconds=args.lease_seconds,
        shutdown_grace=args.shutdown_grace,
    )


def _stopper(*stops: Callable[[], None]) -> _signals_stop:
    def stop_all() -> None:
        for stop in stops:
            stop()

    return _signals_stop(stop_all)


async def _serve(
    settings: Settings,
    db: Database,
    runners: dict[str, TaskRunner],
    descriptions: dict[str, str],
    args: argparse.Namespace,
) -> int:
    worker = Worker(db, runners, _worker_options(settings, args), descriptions=descriptions)
    tune_gc_for_serving()
    with _stopper(worker.stop):
        await worker.run()
    return 0


async def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    agents = args.agent or []
    if not agents:
        raise CliError("invalid_input", "name at least one --agent")
    db, _embedded = await open_database(
        settings, run_migrations=not args.no_migrate, pool_size=max(settings.pool_size, 4)
    )
    try:
        _share_database_url(db)
        runners, descriptions = _runners(agents, args.executor, args.blocking)
        return await _serve(settings, db, runners, descriptions, args)
    finally:
        await db.close()


async def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    names = sorted(registry.available_for_up())
    db, embedded = await open_database(settings, pool_size=max(settings.pool_size, 4))
    try:
        _share_database_url(db)
        runners, descriptions = _runners(names, None, None)
        worker = Worker(db, runners, _worker_options(settings, args), descriptions=descriptions)
        api = _api_server(db, settings)
        dev_key = await _dev_api_key(db, settings)
        where = f"embedded Postgres in {embedded.data_dir}" if embedded else redact_dsn(db.dsn)

        async def announce() -> None:
            url = await api.url()
            print(
                "processgpt is up\n"
                f"  console:  {url}/console#key={dev_key}\n"
                f"  api:      {url}  (docs: {url}/docs)\n"
                f"  api key:  {dev_key}  (tenant 'default'; kept in {_dev_key_path(settings)})\n"
                f"  database: {where}\n"
                f"  agents:   {', '.join(names)} (concurrency {worker.options.concurrency})\n"
                f"  try:      curl -s {url}/v1/tasks -H 'Authorization: Bearer {dev_key}' \\\n"
                "              -H 'content-type: application/json' "
                '-d \'{"agent_orch": "demo", "query": "hello"}\'\n'
                '        or   processgpt submit --agent demo "hello world" --follow\n'
                "  stop:     Ctrl-C (running tasks finish or are handed back)",
                flush=True,
            )

        tune_gc_for_serving()
        with _stopper(worker.stop, api.stop):
            await asyncio.gather(worker.run(), api.serve(), announce())
        return 0
    finally:
        await db.close()


async def cmd_api(settings: Settings, _args: argparse.Namespace) -> int:
    db, _embedded = await open_database(settings)
    try:
        api = _api_server(db, settings)
        tune_gc_for_serving()
        with _stopper(api.stop):
            await asyncio.gather(api.serve(), api.url())
        return 0
    finally:
        await db.close()


async def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    """``keys create|list|revoke``: a tenant's API keys, straight in the database."""
    db, _embedded = await open_database(settings)
    try:
        keys = ApiKeyRepository(db)
        if args.action == "create":
            key = await keys.create(args.tenant_id, args.name)
            print(key.key)
            print(
                f"created API key {key.prefix} for tenant {key.tenant_id!r}; it is shown only once",
                file=sys.stderr,
            )
        elif args.action == "list":
            for info in await keys.list_keys(args.tenant_id):
                state = (
                    f"revoked {info.revoked_at:%Y-%m-%d %H:%M:%S}" if info.revoked_at else "valid"
                )
                print(
                    f"{info.prefix}  {info.created_at:%Y-%m-%d %H:%M:%S}  {state:<27} {info.name}"
                )
        elif not await keys.revoke(args.tenant_id, args.prefix):
            raise CliError(
                "key_not_found", f"tenant {args.tenant_id!r} has no valid key {args.prefix!r}"
            )
        else:
            print(f"revoked API key {args.prefix} of tenant {args.tenant_id!r}")
        return 0
    finally:
        await db.close()


async def cmd_agents(settings: Settings, args: argparse.Namespace) -> int:
    """``agents create|list|delete``: the tenant's agent profiles, straight in the database."""
    tenant = args.agents_tenant or args.tenant
    db, _embedded = await open_database(settings)
    try:
        repo = AgentRepository(db, known_orchestrators=frozenset(registry.available()))
        if args.action == "create":
            tools = [t for t in (args.tools or "").split(",") if t.strip()]
            spec = AgentProfileSpec(
                agent_orch=args.orch,
                model=args.model,
                instructions=args.instructions,
                persona=args.persona,
                tools=tools,
            )
            await db.execute(QUERIES["ensure_tenant"], tenant)
            row = await repo.create(tenant, args.name, spec)
            print(json.dumps(row, default=str, indent=2))
        elif args.action == "list":
            for row in await repo.list_agents(tenant):
                print(f"{row['name']:<24} {row['agent_orch']:<16} {row['model'] or '-'}")
        else:
            await repo.delete(tenant, args.name)
            print(f"deleted agent profile {args.name!r} of tenant {tenant!r}", file=sys.stderr)
        return 0
    finally:
        await db.close()


def _api_server(db: Database, settings: Settings) -> ApiServer:
    # Imported here: a worker process never loads the web stack (it costs ~15 MB of RSS).
    from processgpt.api.app import create_app  # noqa: PLC0415
    from processgpt.api.server import ApiServer  # noqa: PLC0415

    return ApiServer(
        create_app(db, settings),
        settings.api_host,
        settings.api_port,
        keep_alive=settings.api_keep_alive,
    )


def _dev_key_path(settings: Settings) -> Path:
    return (settings.data_dir or default_data_dir()) / "dev-api-key"


async def _dev_api_key(db: Database, settings: Settings) -> str:
    """The development key `up` prints: kept (mode 0600) in the data directory and reused
    while it is valid."""
    path = _dev_key_path(settings)
    keys = ApiKeyRepository(db)
    if path.exists():
        key = path.read_text().strip()
        if await keys.tenant_of(key) == "default":
            return key
    created = await keys.create("default", "development key (processgpt up)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(created.key + "\n")
    return created.key


async def _with_api(
    settings: Settings, args: argparse.Namespace, body: Callable[[ProcessGPT], Awaitable[int]]
) -> int:
    db, embedded = await open_database(settings)
    pg = ProcessGPT(db, embedded=embedded, tenant_id=args.tenant)
    try:
        return await body(pg)
    finally:
        await pg.close()


async def _print_follow(pg: ProcessGPT, task_id: uuid.UUID) -> int:
    async for event in pg.follow(task_id):
        print(_event_line(event), flush=True)
    task = await pg.get(task_id)
    print(f"task {task.id} {task.status}")
    if task.output is not None:
        print(json.dumps(task.output, ensure_ascii=False, indent=2))
    if task.error is not None:
        print(json.dumps(task.error, ensure_ascii=False, indent=2))
    return 0 if task.status in (TaskStatus.DONE, TaskStatus.INPUT_REQUIRED) else 1


async def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {
        "input": _json_arg(args.input) if args.input is not None else {},
        "priority": args.priority,
        "max_attempts": args.max_attempts,
        "idempotency_key": args.idempotency_key,
    }
    if args.run_at:
        try:
            fields["run_at"] = datetime.fromisoformat(args.run_at)
        except ValueError:
            raise CliError("invalid_input", "--run-at must be an ISO 8601 time") from None

    async def body(pg: ProcessGPT) -> int:
        task = await pg.submit(args.agent, args.query, **fields)
        print(f"task {task.id} {task.status}", flush=True)
        if args.follow:
            return await _print_follow(pg, task.id)
        return 0

    return await _with_api(settings, args, body)


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise CliError("invalid_input", f"{text!r} is not a task id") from None


async def cmd_tasks(settings: Settings, args: argparse.Namespace) -> int:
    async def body(pg: ProcessGPT) -> int:
        action = args.action
        if action == "list":
            status = TaskStatus(args.status) if args.status else None
            tasks = await pg.tasks.list_tasks(
                pg.tenant_id, status=status, agent_orch=args.agent, limit=args.limit
            )
            for t in tasks:
                print(
                    f"{t.id}  {t.status:<14} {t.agent_orch:<16} attempts={t.attempts}/"
                    f"{t.max_attempts}  {t.created_at:%Y-%m-%d %H:%M:%S}  {t.query[:40]!r}"
                )
            return 0
        task_id = _uuid(args.task_id)
        if action == "show":
            print(_task_json(await pg.get(task_id)))
            for event in await pg.events(task_id):
                print(_event_line(event))
        elif action == "follow":
            return await _print_follow(pg, task_id)
        elif action == "cancel":
            print(f"task {task_id} {(await pg.cancel(task_id)).status}")
        elif action == "requeue":
            print(f"task {task_id} {(await pg.requeue(task_id)).status}")
        elif action == "answer":
            answer = _json_arg(args.answer) if args.json else args.answer
            print(f"task {task_id} {(await pg.answer(task_id, answer)).status}")
        return 0

    return await _with_api(settings, args, body)


# -- parser -------------------------------------------------------------------------------


def _agents_parser(sub: Any) -> None:
    """The ``agents`` command's arguments."""
    agents = sub.add_parser("agents", help="create, list or delete agent profiles")
    agent_actions = agents.add_subparsers(dest="action", required=True)
    agent_create = agent_actions.add_parser("create", help="create an agent profile")
    agent_create.add_argument("name")
    agent_create.add_argument("--orch", required=True, help="orchestrator (agent_orch)")
    agent_create.add_argument("--model")
    agent_create.add_argument("--instructions")
    agent_create.add_argument("--persona")
    agent_create.add_argument("--tools", help="allowed tools, comma separated (default: all)")
    agent_list = agent_actions.add_parser("list")
    agent_delete = agent_actions.add_parser("delete")
    agent_delete.add_argument("name")
    for p in (agent_create, agent_list, agent_delete):
        p.add_argument("--tenant", dest="agents_tenant", help="tenant id (default: default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="processgpt", description=__doc__)
    parser.add_argument("--tenant", default="default", help="tenant id (default: default)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("api", help="serve the HTTP API (PROCESSGPT_API_HOST/PORT)")
    keys = sub.add_parser("keys", help="manage API keys")
    key_actions = keys.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create", help="create an API key (printed once)")
    create.add_argument("--tenant", dest="tenant_id", required=True)
    create.add_argument("--name", default="")
    listing = key_actions.add_parser("list", help="list a tenant's keys (prefixes, never keys)")
    listing.add_argument("--tenant", dest="tenant_id", required=True)
    revoke = key_actions.add_parser("revoke", help="revoke a key by its prefix (immediate)")
    revoke.add_argument("--tenant", dest="tenant_id", required=True)
    revoke.add_argument("prefix", help="the key's prefix, as `keys list` shows it")

    def serving(p: argparse.ArgumentParser) -> None:
        p.add_argument("--concurrency", type=int, help="tasks run at once by this process")
        p.add_argument("--lease-seconds", type=float, help="lease length (heartbeat: a third)")
        p.add_argument("--shutdown-grace", type=float, help="seconds to let tasks finish on stop")

    up = sub.add_parser("up", help="database + migrations + workers for the built-in agents")
    serving(up)

    worker = sub.add_parser("worker", help="run a worker for one or more orchestrators")
    worker.add_argument("--agent", action="append", help="orchestrator name (repeatable)")
    worker.add_argument("--executor", help="package.module:Class of your own executor")
    worker.add_argument(
        "--blocking",
        action="store_true",
        default=None,
        help="run the executor in a thread (for blocking code)",
    )
    worker.add_argument("--no-migrate", action="store_true", help="do not apply migrations")
    serving(worker)

    submit = sub.add_parser("submit", help="submit a task")
    submit.add_argument("--agent", required=True, help="orchestrator name (agent_orch)")
    submit.add_argument("query", nargs="?", default="")
    submit.add_argument("--input", help="JSON object given to the agent")
    submit.add_argument("--priority", type=int, default=0)
    submit.add_argument("--max-attempts", type=int, default=3)
    submit.add_argument("--idempotency-key")
    submit.add_argument("--run-at", help="ISO 8601 time before which the task does not run")
    submit.add_argument("--follow", action="store_true", help="print the task's events live")

    tasks = sub.add_parser("tasks", help="list, show, follow, cancel, requeue or answer tasks")
    actions = tasks.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list")
    listing.add_argument("--status", choices=[s.value for s in TaskStatus])
    listing.add_argument("--agent")
    listing.add_argument("--limit", type=int, default=50)
    for name in ("show", "follow", "cancel", "requeue"):
        actions.add_parser(name).add_argument("task_id")
    answer = actions.add_parser("answer", help="answer a task waiting for input")
    answer.add_argument("task_id")
    answer.add_argument("answer")
    answer.add_argument("--json", action="store_true", help="the answer is JSON")
    _agents_parser(sub)
    return parser


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "migrate": cmd_migrate,
    "api": cmd_api,
    "keys": cmd_keys,
    "up": cmd_up,
    "worker": cmd_worker,
    "submit": cmd_submit,
    "tasks": cmd_tasks,
    "agents": cmd_agents,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(
            f"error: invalid_configuration: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}",
            file=sys.stderr,
        )
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        return run_command(COMMANDS[args.command](settings, args))
    except CliError as exc:
        print(f"error: {exc.code}: {exc}", file=sys.stderr)
    except ProcessGPTError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"error: invalid_input: {where}: {first['msg']}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())

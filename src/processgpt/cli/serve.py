"""``up``, ``api`` and ``worker``: the commands that serve until they are stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from processgpt.agents import registry
from processgpt.agents.task_runner import A2ATaskRunner
from processgpt.app import (
    _signals_stop,
    open_database,
    secret_box,
    webhook_delivery,
    worker_memory,
    worker_metrics,
    worker_options,
)
from processgpt.cli.common import CliError, data_dir_of, load_settings
from processgpt.cli.target import remove_profile, write_profile
from processgpt.config import FileSettings, LlmSettings, McpSettings, Settings, WebhookSettings
from processgpt.db.api_keys import ApiKeyRepository, Principal
from processgpt.db.database import Database, redact_dsn
from processgpt.db.secret_box import SecretBox
from processgpt.domain.roles import Role
from processgpt.files.service import FileService
from processgpt.runtime.run import TaskRunner
from processgpt.runtime.serving import tune_gc_for_serving
from processgpt.runtime.worker import Worker, WorkerOptions
from processgpt.tools.executor_view import ExecutorMcpView
from processgpt.tools.mcp import McpConnections

if TYPE_CHECKING:
    from processgpt.api.server import ApiServer

log = logging.getLogger(__name__)

LLM_HINT = (
    "set PROCESSGPT_LLM_BASE_URL (any OpenAI-compatible endpoint) and/or "
    "PROCESSGPT_LLM_API_KEY (alone: OpenAI) to run {names}"
)


@dataclass(frozen=True)
class _Mcp:
    """What a process's agents share about MCP: one pool, one view for other executors, both
    with the process's one :class:`SecretBox` (the API's too, in ``up``)."""

    settings: McpSettings
    box: SecretBox
    connections: McpConnections
    view: ExecutorMcpView

    @classmethod
    def build(cls, settings: Settings) -> _Mcp:
        mcp = load_settings(McpSettings)
        box = secret_box(settings)
        try:
            view = ExecutorMcpView.of(mcp, box)
        except ValueError as exc:  # a network the operator allows is not one
            raise CliError(
                "invalid_configuration", f"PROCESSGPT_MCP_ALLOWED_NETWORKS: {exc}"
            ) from None
        return cls(mcp, box, McpConnections(mcp, box=box), view)


def _runners(
    agents: Sequence[str],
    executor: str | None,
    blocking: bool | None,
    llm: LlmSettings,
    mcp: _Mcp,
    *,
    files: FileService,
) -> tuple[dict[str, TaskRunner], dict[str, str]]:
    runners: dict[str, TaskRunner] = {}
    descriptions: dict[str, str] = {}

    def runner(name_or_spec: str) -> TaskRunner:
        made = registry.create_executor(name_or_spec, llm=llm, connections=mcp.connections)
        return A2ATaskRunner(made, blocking=blocking, mcp_view=mcp.view, files=files)

    if executor:
        if len(agents) != 1:
            raise CliError("invalid_input", "--executor needs exactly one --agent NAME")
        runners[agents[0]] = runner(executor)
        return runners, descriptions
    for name in agents:
        runners[name] = runner(name)
        descriptions[name] = registry.describe(name)
    return runners, descriptions


def _files(db: Database, settings: Settings, box: SecretBox) -> FileService:
    """The worker's file storage (the files agents send and read)."""
    return FileService.configured(db, load_settings(FileSettings), data_dir_of(settings), box)


def _share_database_url(db: Database) -> None:
    """Executors that open connections of their own (the ``delegate`` tool) find the
    database in ``DATABASE_URL``; with the embedded default it is only known now."""
    os.environ.setdefault("DATABASE_URL", db.dsn)


def _worker_options(
    settings: Settings, args: argparse.Namespace, db: Database, llm: LlmSettings
) -> WorkerOptions:
    return worker_options(
        settings,
        concurrency=args.concurrency,
        lease_seconds=args.lease_seconds,
        shutdown_grace=args.shutdown_grace,
        **worker_memory(db, llm),
    )


def _stopper(*stops: Callable[[], None]) -> _signals_stop:
    def stop_all() -> None:
        for stop in stops:
            stop()

    return _signals_stop(stop_all)


async def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    agents = args.agent or []
    if not agents:
        raise CliError("invalid_input", "name at least one --agent")
    llm = load_settings(LlmSettings)
    # Refuse what cannot work before starting anything (an embedded Postgres takes seconds).
    if args.executor and ":" in args.executor:
        registry.load_object(args.executor, from_cwd=True)
    else:
        for name in agents:
            if name in registry.NEEDS_LLM:
                llm.require_endpoint(name)
    mcp = _Mcp.build(settings)
    db, _embedded = await open_database(
        settings, run_migrations=not args.no_migrate, pool_size=max(settings.pool_size, 4)
    )
    try:
        _share_database_url(db)
        files = _files(db, settings, mcp.box)
        runners, descriptions = _runners(
            agents, args.executor, args.blocking, llm, mcp, files=files
        )
        worker = Worker(
            db,
            runners,
            _worker_options(settings, args, db, llm),
            descriptions=descriptions,
            webhooks=webhook_delivery(mcp.box, load_settings(WebhookSettings)),
            file_storage=files.storage,
        )
        tune_gc_for_serving()
        with _stopper(worker.stop):
            async with worker_metrics(settings, db):
                await worker.run()
        return 0
    finally:
        await mcp.connections.close()
        await db.close()


def _client_url(url: str, host: str) -> str:
    """The URL a client on this machine uses: a server listening on every address is
    reached on the loopback one; an IPv6 address goes in brackets."""
    port = url.rsplit(":", 1)[1]
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - recognising it, not binding to it
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _leave_profile(data_dir: Path, url: str, key: str) -> str:
    """Write the profile; what the banner says about it (a failure is said, not raised:
    the instance runs without it)."""
    try:
        path = write_profile(data_dir, url, key)
    except OSError as exc:
        log.warning("profile not written data_dir=%s error=%s", data_dir, exc)
        return f"not written ({exc}); other shells need --url and --api-key"
    return f"{path}  (how 'processgpt submit' and 'tasks' in another shell find this instance)"


async def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    llm = load_settings(LlmSettings)
    names = sorted(registry.available_for_up(llm))
    off = sorted(n for n in registry.NEEDS_LLM if n in registry.available() and n not in names)
    data_dir = data_dir_of(settings)
    mcp = _Mcp.build(settings)
    db, embedded = await open_database(settings, pool_size=max(settings.pool_size, 4))
    try:
        _share_database_url(db)
        files = _files(db, settings, mcp.box)
        runners, descriptions = _runners(names, None, None, llm, mcp, files=files)
        worker = Worker(
            db,
            runners,
            _worker_options(settings, args, db, llm),
            descriptions=descriptions,
            webhooks=webhook_delivery(mcp.box, load_settings(WebhookSettings)),
            file_storage=files.storage,
        )
        # The API never reports these agents unserved: this process's worker serves them
        # (before its first `workers` row is written, too).
        api = _api_server(db, settings, mcp.settings, mcp.box, local_agents=frozenset(names))
        dev_key = await _dev_api_key(db, data_dir)
        where = f"embedded Postgres in {embedded.data_dir}" if embedded else redact_dsn(db.dsn)

        async def announce() -> None:
            url = await api.url()
            profile = _leave_profile(data_dir, _client_url(url, settings.api_host), dev_key)
            agents_line = (
                f"  agents:   {', '.join(names)} (concurrency {worker.options.concurrency})"
            )
            if off:
                agents_line += f"\n            off: {LLM_HINT.format(names=' and '.join(off))}"
            print(
                "processgpt is up\n"
                f"  console:  {url}/console#key={dev_key}\n"
                f"  api:      {url}  (docs: {url}/docs)\n"
                f"  api key:  {dev_key}  (tenant 'default'; kept in {_dev_key_path(data_dir)})\n"
                f"  profile:  {profile}\n"
                f"  database: {where}\n"
                f"{agents_line}\n"
                f"  try:      curl -s {url}/v1/tasks -H 'Authorization: Bearer {dev_key}' \\\n"
                "              -H 'content-type: application/json' "
                '-d \'{"agent_orch": "demo", "query": "hello"}\'\n'
                '        or   processgpt submit --agent demo "hello world" --follow\n'
                "  stop:     Ctrl-C (running tasks finish or are handed back)",
                flush=True,
            )

        tune_gc_for_serving()
        try:
            with _stopper(worker.stop, api.stop):
                await asyncio.gather(worker.run(), api.serve(), announce())
        finally:
            remove_profile(data_dir)
        return 0
    finally:
        await mcp.connections.close()
        await db.close()


async def cmd_api(settings: Settings, _args: argparse.Namespace) -> int:
    mcp = load_settings(McpSettings)
    box = secret_box(settings)
    db, _embedded = await open_database(settings)
    try:
        api = _api_server(db, settings, mcp, box)
        tune_gc_for_serving()
        with _stopper(api.stop):
            await asyncio.gather(api.serve(), api.url())
        return 0
    finally:
        await db.close()


def _api_server(
    db: Database,
    settings: Settings,
    mcp: McpSettings,
    box: SecretBox,
    *,
    local_agents: frozenset[str] = frozenset(),
) -> ApiServer:
    # Imported here: a worker process never loads the web stack (it costs ~15 MB of RSS).
    from processgpt.api.app import create_app  # noqa: PLC0415
    from processgpt.api.server import ApiServer  # noqa: PLC0415

    return ApiServer(
        create_app(
            db,
            settings,
            mcp=mcp,
            box=box,
            local_agents=local_agents,
            files=load_settings(FileSettings),
        ),
        settings.api_host,
        settings.api_port,
        keep_alive=settings.api_keep_alive,
    )


def _dev_key_path(data_dir: Path) -> Path:
    return data_dir / "dev-api-key"


async def _dev_api_key(db: Database, data_dir: Path) -> str:
    """The development key `up` prints: an admin key of tenant ``default`` (it manages the
    tenant's agents, MCP servers and keys from the console), kept (mode 0600) in the data
    directory and reused while it is valid."""
    path = _dev_key_path(data_dir)
    keys = ApiKeyRepository(db)
    if path.exists():
        key = path.read_text().strip()
        if await keys.principal_of(key) == Principal("default", Role.ADMIN):
            return key
    created = await keys.create("default", "development key (processgpt up)", Role.ADMIN)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(created.key + "\n")
    return created.key

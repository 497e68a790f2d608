"""``migrate``, ``keys``, ``agents``, ``secrets``, ``retention`` and ``workers``: operator
commands, straight in the database (``DATABASE_URL``, or the embedded Postgres of the data
directory)."""

from __future__ import annotations

import argparse
import json
import sys

from processgpt.agents import registry
from processgpt.app import open_database, retention_options, secret_box
from processgpt.cli.common import CliError, data_dir_of, load_settings
from processgpt.config import FileSettings, Settings
from processgpt.db.agents import AgentProfileSpec, AgentRepository
from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.mcp_servers import rotate_secrets
from processgpt.db.migrate import current_version, migrate
from processgpt.db.retention import RetentionRepository
from processgpt.db.tenants import TenantRepository
from processgpt.db.webhooks import rotate_webhook_secrets
from processgpt.db.workers import WorkerRegistry
from processgpt.domain.roles import Role
from processgpt.files.service import open_storage
from processgpt.runtime.retention import RetentionJob


async def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    db, _embedded = await open_database(settings, run_migrations=False)
    try:
        applied = await migrate(db)
        version = await current_version(db)
        print(f"schema at version {version} ({len(applied)} migration(s) applied)")
    finally:
        await db.close()
    return 0


async def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    """``keys create|list|revoke``: a tenant's API keys."""
    db, _embedded = await open_database(settings)
    try:
        keys = ApiKeyRepository(db)
        if args.action == "create":
            key = await keys.create(args.tenant_id, args.name, role=Role(args.role))
            print(key.key)
            print(
                f"created {key.role} API key {key.prefix} for tenant {key.tenant_id!r}; "
                "it is shown only once",
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
    """``agents create|list|delete``: a tenant's agent profiles."""
    tenant = args.agents_tenant or args.tenant or "default"
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
            await TenantRepository(db).ensure(tenant)
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


async def cmd_secrets(settings: Settings, args: argparse.Namespace) -> int:
    """``secrets rotate [--new-key]``: re-encrypt every stored secret with the first key."""
    box = secret_box(settings)
    if args.new_key:
        box.add_key()
        print(f"added a new first key to {box.key_file}", file=sys.stderr)
    db, _embedded = await open_database(settings)
    try:
        report = await rotate_secrets(db, box)
        webhooks = await rotate_webhook_secrets(db, box)
    finally:
        await db.close()
    print(
        f"re-encrypted the secrets of {report.servers} MCP server(s) and "
        f"{report.tenants} tenant MCP configuration(s) and {webhooks} webhook signing "
        "secret(s) with the first key"
    )
    return 0


async def cmd_retention(settings: Settings, args: argparse.Namespace) -> int:
    """``retention [--dry-run]``: run a retention pass now, or count what one would delete."""
    db, _embedded = await open_database(settings)
    try:
        storage = open_storage(load_settings(FileSettings), data_dir_of(settings))
        job = RetentionJob(RetentionRepository(db), retention_options(settings), storage)
        if args.dry_run:
            preview = await job.preview()
            if not preview:
                print("no tenant has a retention: nothing expires (PROCESSGPT_RETENTION_DAYS)")
            for tenant, (cutoff, would) in preview.items():
                print(
                    f"{tenant}: finished before {cutoff.cutoff:%Y-%m-%d %H:%M:%S%z}: "
                    f"{would.tasks} task(s), {would.events} event(s), "
                    f"{would.instances} process instance(s), {would.files} file(s) "
                    "would be deleted"
                )
            return 0
        removed = await job.run_once()
        if removed is None:
            raise CliError(
                "retention_running", "another process is running a retention pass; try later"
            )
        for tenant, gone in removed.items():
            print(
                f"{tenant}: deleted {gone.tasks} task(s), {gone.events} event(s), "
                f"{gone.instances} process instance(s), {gone.files} file(s)"
            )
        if not removed:
            print("nothing had expired")
        return 0
    finally:
        await db.close()


async def cmd_workers(settings: Settings, args: argparse.Namespace) -> int:
    """``workers``: the worker processes registered in the database, live and lost."""
    db, _embedded = await open_database(settings)
    try:
        rows = await WorkerRegistry(db).list()
    finally:
        await db.close()
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    if not rows:
        print("no workers registered (start one: processgpt worker --agent NAME)")
        return 0
    print(
        f"{'STATE':<5}  {'ID':<32}  {'SLOTS':>9}  {'LAST BEAT':<19}  {'STARTED':<19}  "
        f"{'VERSION':<10}  AGENTS"
    )
    for row in rows:
        slots = f"{row['slots_in_use']}/{row['slots']}"
        print(
            f"{'lost' if row['lost'] else 'live':<5}  {row['id']:<32}  {slots:>9}  "
            f"{row['last_heartbeat_at']:%Y-%m-%d %H:%M:%S}  {row['started_at']:%Y-%m-%d %H:%M:%S}"
            f"  {row['version']:<10}  {','.join(row['agents'])}"
        )
    return 0

"""A tenant's MCP servers at rest: secrets sealed in the table, opened for the workers,
re-encrypted by ``processgpt secrets rotate``; migration 0014 switching tenants' commands off."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from processgpt.api.routes.mcp_servers import server_view
from processgpt.db.database import Database
from processgpt.db.mcp_servers import McpServerRepository, McpServerSpec, open_entry
from processgpt.db.migrate import available_migrations, migrate
from processgpt.db.secret_box import SecretBox, new_key
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import (
    NameTaken,
    SecretsUnavailable,
    StdioNotAllowed,
    TooManyMcpServers,
)
from processgpt.tools.mcp_config import OperatorConfig, plan_for_task
from processgpt.tools.mcp_tools import error_text
from processgpt.tools.netguard import NetworkPolicy
from tests.support import PostgresServer

HEADER = "Bearer planted-header-secret-1"
ENV = "planted-env-secret-2"
URL_TOKEN = "planted-url-token-3"
PASSWORD = "planted-password-4"
LEGACY = "planted-legacy-plaintext-5"
ARG_TOKEN = "planted-arg-token-7"
PLANTED = (HEADER, ENV, URL_TOKEN, PASSWORD)


async def _stored_text(db: Database) -> str:
    servers = await db.fetchval("SELECT string_agg(config::text, ' ') FROM mcp_servers")
    tenants = await db.fetchval("SELECT string_agg(mcp::text, ' ') FROM tenants")
    return f"{servers} {tenants}"


async def _rotate(db_url: str, keys: str | None, data_dir: Path, *args: str) -> str:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": db_url,
        "PROCESSGPT_DATA_DIR": str(data_dir),
        **({"PROCESSGPT_SECRET_KEYS": keys} if keys else {}),
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "processgpt.cli", "secrets", "rotate", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for secret in (*PLANTED, LEGACY, *(keys or "").split(",")):
        if secret:
            assert secret not in result.stdout + result.stderr
    return result.stdout


async def test_secrets_are_sealed_in_the_table_and_rotated(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    old, new = new_key(), new_key()
    await db.execute(QUERIES["ensure_tenant"], "acme")
    repo = McpServerRepository(db, SecretBox([old]))
    await repo.add(
        "acme",
        McpServerSpec(
            name="search",
            url=f"https://user:{PASSWORD}@search.example/mcp?token={URL_TOKEN}",
            headers={"Authorization": HEADER},
        ),
    )
    await repo.add("acme", McpServerSpec(name="gh", catalog="github", env={"TOKEN": ENV}))
    with pytest.raises(StdioNotAllowed):
        await repo.add("acme", McpServerSpec(name="sh", command="/bin/sh", args=["-c", "id"]))
    stored = await _stored_text(db)
    for secret in PLANTED:
        assert secret not in stored
    assert '"https://search.example"' in stored  # what may be shown stays readable

    # written before encryption (or by hand): plaintext until the next rotation
    await db.execute(
        "INSERT INTO mcp_servers (tenant_id, name, transport, config)"
        " VALUES ('acme', 'old', 'http', $1)",
        {"url": "https://old.example/mcp", "headers": {"X-Key": LEGACY}},
    )
    await db.execute(
        "UPDATE tenants SET mcp = $1 WHERE id = 'acme'",
        {"mcpServers": {"t": {"url": f"https://t.example/mcp?key={LEGACY}"}}},
    )
    assert LEGACY in await _stored_text(db)

    output = await _rotate(db_url, f"{new},{old}", tmp_path)
    assert "3 MCP server(s)" in output and "1 tenant MCP configuration(s)" in output
    stored = await _stored_text(db)
    for secret in (*PLANTED, LEGACY):
        assert secret not in stored

    # only the new key is needed now; the old one alone opens nothing
    configs = {r["name"]: r["config"] for r in await db.fetch("SELECT * FROM mcp_servers")}
    only_new, only_old = SecretBox([new]), SecretBox([old])
    search = open_entry(configs["search"], only_new)
    assert search["url"] == f"https://user:{PASSWORD}@search.example/mcp?token={URL_TOKEN}"
    assert search["headers"] == {"Authorization": HEADER}
    assert open_entry(configs["gh"], only_new)["env"] == {"TOKEN": ENV}
    assert open_entry(configs["old"], only_new)["headers"] == {"X-Key": LEGACY}
    with pytest.raises(SecretsUnavailable):
        open_entry(configs["search"], only_old)

    # what a worker makes of it: the tenant's entries, opened
    tenant_mcp = await db.fetchval("SELECT mcp FROM tenants WHERE id = 'acme'")
    plan = plan_for_task(
        {"mcpServers": {**tenant_mcp["mcpServers"], "search": configs["search"]}},
        tenant_id="acme",
        operator=OperatorConfig(),
        box=only_new,
        policy=NetworkPolicy(),
    )
    servers = {s.name: s for s in plan.servers}
    assert servers["t"].url == f"https://t.example/mcp?key={LEGACY}"
    assert servers["search"].headers == {"Authorization": HEADER}
    # a worker without the key refuses the server, saying why (not the value)
    refused = plan_for_task(
        {"mcpServers": {"search": configs["search"]}},
        tenant_id="acme",
        operator=OperatorConfig(),
        box=only_old,
        policy=NetworkPolicy(),
    )
    assert not refused.servers and "PROCESSGPT_SECRET_KEYS" in refused.refused["search"]


PATH_TOKEN = "planted-path-token-6"


async def test_a_token_in_the_url_path_is_sealed_never_shown_nor_logged(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    key = new_key()
    box = SecretBox([key])
    await db.execute(QUERIES["ensure_tenant"], "acme")
    url = f"https://mcp.example.com/{PATH_TOKEN}/v2/mcp"
    row = await McpServerRepository(db, box).add("acme", McpServerSpec(name="fc", url=url))
    assert server_view(row).url == "https://mcp.example.com"  # what members see
    # written before: the path in the clear, in a row and in tenants.mcp
    await db.execute(
        "INSERT INTO mcp_servers (tenant_id, name, transport, config)"
        " VALUES ('acme', 'old', 'http', $1)",
        {"url": f"https://old.example/mcp/{PATH_TOKEN}", "headers": {}},
    )
    await db.execute(
        "UPDATE tenants SET mcp = $1 WHERE id = 'acme'",
        {"mcpServers": {"t": {"url": f"https://t.example/{PATH_TOKEN}"}}},
    )
    assert (await _stored_text(db)).count(PATH_TOKEN) == 2
    await _rotate(db_url, key, tmp_path)
    assert PATH_TOKEN not in await _stored_text(db)

    configs = {r["name"]: r["config"] for r in await db.fetch("SELECT * FROM mcp_servers")}
    assert configs["old"]["url"] == "https://old.example"
    tenant_mcp = await db.fetchval("SELECT mcp FROM tenants WHERE id = 'acme'")
    plan = plan_for_task(
        {"mcpServers": {**tenant_mcp["mcpServers"], **configs}},
        tenant_id="acme",
        operator=OperatorConfig(),
        box=box,
        policy=NetworkPolicy(),
    )
    servers = {s.name: s for s in plan.servers}
    assert servers["fc"].url == url  # the worker gets the whole URL
    assert servers["old"].url == f"https://old.example/mcp/{PATH_TOKEN}"
    assert servers["t"].url == f"https://t.example/{PATH_TOKEN}"
    for server in servers.values():  # what "mcp connecting server=…" logs
        assert PATH_TOKEN not in server.describe() and PATH_TOKEN not in repr(server)
        error = error_text(OSError(f"cannot reach {server.url.rstrip('/')}/"), server)
        assert PATH_TOKEN not in error


async def test_rotation_with_a_new_key_in_the_data_dir_file(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    await db.execute(QUERIES["ensure_tenant"], "acme")
    box = SecretBox.configured(None, tmp_path)
    await McpServerRepository(db, box).add(
        "acme", McpServerSpec(name="s", url="https://s.example/mcp", headers={"A": HEADER})
    )
    first_key = (tmp_path / "secret.key").read_text().split()
    assert len(first_key) == 1

    await _rotate(db_url, None, tmp_path, "--new-key")
    keys = (tmp_path / "secret.key").read_text().split()
    assert len(keys) == 2 and keys[1] == first_key[0]
    config = await db.fetchval("SELECT config FROM mcp_servers WHERE name = 's'")
    assert open_entry(config, SecretBox([keys[0]]))["headers"] == {"A": HEADER}
    # a process still holding only the first key reads the file again and opens it
    assert open_entry(config, box)["headers"] == {"A": HEADER}


async def test_a_tenant_has_at_most_max_servers_even_when_adding_at_once(db: Database) -> None:
    await db.execute(QUERIES["ensure_tenant"], "acme")
    await db.execute(QUERIES["ensure_tenant"], "globex")
    repo = McpServerRepository(db, SecretBox([new_key()]), max_servers=3)

    async def add(tenant: str, name: str) -> str:
        try:
            await repo.add(tenant, McpServerSpec(name=name, url="https://s.example/mcp"))
        except (TooManyMcpServers, NameTaken) as exc:
            return exc.code
        return "added"

    outcomes = await asyncio.gather(*(add("acme", f"s{i}") for i in range(12)))
    assert sorted(outcomes) == ["added"] * 3 + ["too_many_mcp_servers"] * 9
    assert await db.fetchval("SELECT count(*) FROM mcp_servers WHERE tenant_id = 'acme'") == 3
    # an existing name is still name_taken; another tenant has its own room
    taken = next(n for n in (f"s{i}" for i in range(12)) if outcomes[int(n[1:])] == "added")
    assert await add("acme", taken) == "name_taken"
    assert await add("globex", "s0") == "added"
    # removing one makes room
    await repo.delete("acme", taken)
    assert await add("acme", "again") == "added"


async def test_migration_0014_switches_tenants_commands_off(pg_server: PostgresServer) -> None:
    url = await pg_server.create_database(empty=True)
    db = await Database.connect(url, max_size=2)
    try:
        await _migrate_up_to(db, 13)
        await db.execute(QUERIES["ensure_tenant"], "acme")
        for name, transport, config in [
            ("sh", "stdio", {"command": "/bin/sh", "args": ["-c", "id"], "env": {}}),
            ("web", "http", {"url": "https://web.example/mcp", "headers": {}}),
        ]:
            await db.execute(
                "INSERT INTO mcp_servers (tenant_id, name, transport, config, enabled)"
                " VALUES ('acme', $1, $2, $3::text::jsonb, true)",
                name,
                transport,
                _json(config),
            )
        await db.execute(
            "UPDATE tenants SET mcp = $1::text::jsonb WHERE id = 'acme'",
            _json(
                {
                    "mcpServers": {
                        "cmd": {"command": "/bin/sh"},
                        "web": {"url": "https://w.example/mcp"},
                    },
                    "other": 1,
                }
            ),
        )

        assert (await migrate(db))[0].version == 14
        rows = {r["name"]: r["enabled"] for r in await db.fetch("SELECT * FROM mcp_servers")}
        assert rows == {"sh": False, "web": True}
        mcp = await db.fetchval("SELECT mcp FROM tenants WHERE id = 'acme'")
        assert mcp["mcpServers"]["cmd"] == {"command": "/bin/sh", "disabled": True}
        assert mcp["mcpServers"]["web"] == {"url": "https://w.example/mcp"} and mcp["other"] == 1
        with pytest.raises(asyncpg.CheckViolationError):
            await db.execute("UPDATE mcp_servers SET enabled = true WHERE name = 'sh'")
        with pytest.raises(asyncpg.CheckViolationError):
            await db.execute(
                "INSERT INTO mcp_servers (tenant_id, name, transport, config)"
                " VALUES ('acme', 'x', 'stdio', '{\"command\": \"id\"}')"
            )
        await db.execute(
            "INSERT INTO mcp_servers (tenant_id, name, transport, config)"
            " VALUES ('acme', 'gh', 'catalog', '{\"catalog\": \"github\", \"env\": {}}')"
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await db.execute(
                "INSERT INTO mcp_servers (tenant_id, name, transport, config)"
                " VALUES ('acme', 'y', 'catalog', '{\"catalog\": \"g\", \"command\": \"id\"}')"
            )
    finally:
        await db.close()
        await pg_server.drop_database(url)


async def test_migration_0016_drops_what_tenants_commands_still_held(
    pg_server: PostgresServer,
) -> None:
    url = await pg_server.create_database(empty=True)
    db = await Database.connect(url, max_size=2)
    try:
        await _migrate_up_to(db, 15)
        await db.execute(QUERIES["ensure_tenant"], "acme")
        stdio = {
            "command": "gh-mcp",
            "args": ["--token", ARG_TOKEN],
            "env": {"GITHUB_TOKEN": ENV},
            "cwd": "/srv/acme",
        }
        await db.execute(
            "INSERT INTO mcp_servers (tenant_id, name, transport, config, enabled)"
            " VALUES ('acme', 'sh', 'stdio', $1::text::jsonb, false),"
            " ('acme', 'web', 'http', $2::text::jsonb, true)",
            _json(stdio),
            _json({"url": "https://web.example", "headers": {}}),
        )
        await db.execute(
            "UPDATE tenants SET mcp = $1::text::jsonb WHERE id = 'acme'",
            _json(
                {
                    "mcpServers": {
                        "cmd": {**stdio, "disabled": True},
                        "web": {"url": "https://w.example/mcp"},
                    }
                }
            ),
        )
        assert (await migrate(db))[0].version == 16
        assert ARG_TOKEN not in await _stored_text(db) and ENV not in await _stored_text(db)
        rows = {r["name"]: r["config"] for r in await db.fetch("SELECT * FROM mcp_servers")}
        assert rows["sh"] == {"command": "gh-mcp"}
        assert rows["web"] == {"url": "https://web.example", "headers": {}}
        mcp = await db.fetchval("SELECT mcp FROM tenants WHERE id = 'acme'")
        assert mcp["mcpServers"] == {
            "cmd": {"command": "gh-mcp", "disabled": True},
            "web": {"url": "https://w.example/mcp"},
        }
        # what the API shows of the old row: its command, nothing else
        view = server_view(dict(await db.fetchrow("SELECT * FROM mcp_servers WHERE name='sh'")))
        assert (view.command, view.args, view.env, view.cwd) == ("gh-mcp", [], {}, None)
    finally:
        await db.close()
        await pg_server.drop_database(url)


async def test_rotation_drops_what_command_entries_hold(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    """Rows written by hand after migration 0016 lose them at the next rotation."""
    key = new_key()
    await db.execute(QUERIES["ensure_tenant"], "acme")
    stdio = {"command": "gh-mcp", "args": ["--token", ARG_TOKEN], "env": {"T": ENV}}
    await db.execute(
        "INSERT INTO mcp_servers (tenant_id, name, transport, config, enabled)"
        " VALUES ('acme', 'sh', 'stdio', $1, false)",
        stdio,
    )
    await db.execute(
        "UPDATE tenants SET mcp = $1 WHERE id = 'acme'", {"mcpServers": {"cmd": stdio}}
    )
    await _rotate(db_url, key, tmp_path)
    stored = await _stored_text(db)
    assert ARG_TOKEN not in stored and ENV not in stored and "gh-mcp" in stored


def _json(value: Any) -> str:
    return json.dumps(value)


async def _migrate_up_to(db: Database, version: int) -> None:
    """Apply the migrations up to ``version`` as :func:`migrate` would."""
    await db.execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for migration in available_migrations():
        if migration.version > version:
            break
        async with db.transaction() as conn:
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
    await db.pool.expire_connections()

"""The critical hole, closed: a tenant's key can no longer make a worker run a command or reach
internal addresses. Real ``processgpt api`` and ``processgpt worker --agent llm`` processes, a
real MCP server over stdio from the operator's file (so the worker does spawn what the
operator names), a TCP listener standing in for internal services, and the scripted model."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from cryptography.fernet import Fernet

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.api.conftest import MCP_SERVER, start_api, write_mcp_config
from tests.api.test_tasks_api import error_code, wait_status
from tests.fake_llm import FakeLLM, Turn
from tests.support import StartProcess


class _Listener:
    """A TCP port that counts the connections made to it (an 'internal service')."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> _Listener:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()


@pytest.fixture
async def internal() -> AsyncIterator[_Listener]:
    listener = await _Listener().start()
    yield listener
    await listener.stop()


REFUSED_HEADERS = (
    "Host",
    "connection",
    "Content-Length",
    "Transfer-Encoding",
    "TE",
    "Upgrade",
    "Trailer",
    "Keep-Alive",
    "Proxy-Authorization",
    "X-Forwarded-For",
)


def _attacks(marker: Path, port: int) -> list[tuple[dict[str, Any], str]]:
    """The issue's payloads and their variants, with the code each gets."""
    touch = f"touch {marker}"
    return [
        ({"name": "sh", "command": "/bin/sh", "args": ["-c", touch]}, "stdio_not_allowed"),
        ({"name": "abs", "command": "/usr/bin/touch", "args": [str(marker)]}, "stdio_not_allowed"),
        (
            {"name": "env", "command": sys.executable, "env": {"LD_PRELOAD": "/tmp/evil.so"}},
            "stdio_not_allowed",
        ),
        (
            {
                "name": "shellargs",
                "command": "python3",
                "args": ["-c", f"import os; os.system({touch!r})"],
            },
            "stdio_not_allowed",
        ),
        (
            {"name": "argsonly", "args": ["-c", touch], "url": "https://x.example/"},
            "stdio_not_allowed",
        ),
        ({"name": "typed", "transport": "stdio", "url": "https://x.example/"}, "stdio_not_allowed"),
        ({"name": "cwd", "cwd": "/", "url": "https://x.example/mcp"}, "stdio_not_allowed"),
        (
            {"name": "catenv", "catalog": "calc", "env": {"LD_PRELOAD": "/tmp/evil.so"}},
            "invalid_input",
        ),
        (
            {"name": "catpath", "catalog": "calc", "env": {"PATH": str(marker.parent)}},
            "invalid_input",
        ),
        (  # listed by the operator, refused all the same
            {"name": "cattls", "catalog": "calc", "env": {"NODE_TLS_REJECT_UNAUTHORIZED": "0"}},
            "invalid_input",
        ),
        *(
            (
                {"name": f"hdr{i}", "url": "https://x.example/mcp", "headers": {header: "v"}},
                "invalid_input",
            )
            for i, header in enumerate(REFUSED_HEADERS)
        ),
        ({"name": "loop", "url": f"http://127.0.0.1:{port}/mcp"}, "url_not_allowed"),
        ({"name": "meta", "url": "http://169.254.169.254/latest/meta-data/"}, "url_not_allowed"),
        ({"name": "v6", "url": f"http://[::ffff:127.0.0.1]:{port}/mcp"}, "url_not_allowed"),
        ({"name": "dec", "url": f"http://2130706433:{port}/mcp"}, "url_not_allowed"),
        ({"name": "lh", "url": f"http://localhost:{port}/mcp"}, "url_not_allowed"),
        ({"name": "priv", "url": "http://10.0.0.1/mcp"}, "url_not_allowed"),
    ]


def _loopback_name() -> str | None:
    """A host name (not ``localhost``) that resolves to loopback here, to reach the worker's
    connect-time check past the URL check (the machine's own name usually does)."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 80)}
    except OSError:
        return None
    return name if addresses and all(a.startswith("127.") for a in addresses) else None


async def test_a_tenant_cannot_make_a_worker_run_commands_or_reach_internal_addresses(
    db: Database,
    start_process: StartProcess,
    fake_llm: FakeLLM,
    internal: _Listener,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    keys = ApiKeyRepository(db)
    admin = (await keys.create("acme", role=Role.ADMIN)).key
    member = (await keys.create("acme", role=Role.MEMBER)).key
    # the operator names one stdio server: workers do run what the operator configures
    config = write_mcp_config(
        tmp_path / "mcp.json",
        {"ops": {"command": sys.executable, "args": [str(MCP_SERVER)]}},
    )
    env = {"PROCESSGPT_MCP_CONFIG": str(config)}
    _api, url = await start_api(start_process, env)
    worker = start_process(
        "worker",
        "--agent",
        "llm",
        env={**env, "PROCESSGPT_LLM_BASE_URL": fake_llm.base_url, "PROCESSGPT_LLM_API_KEY": "sk"},
    )
    await worker.wait_for_log("worker started")

    attacks = _attacks(marker, internal.port)
    async with (
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as api,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {member}"}) as mem,
    ):
        for body, code in attacks:
            refused = await mem.post("/v1/mcp-servers", json=body)
            assert refused.status_code == 403, (body, refused.text)
            response = await api.post("/v1/mcp-servers", json=body)
            assert response.status_code == 422, (body, response.text)
            assert error_code(response) == code, (body, response.text)
        assert await db.fetchval("SELECT count(*) FROM mcp_servers") == 0

        # Rows written past the API (by hand, or by an older version): the worker refuses
        # them. The schema itself refuses an enabled stdio row; drop that guard to prove the
        # worker's.
        await db.execute("ALTER TABLE mcp_servers DROP CONSTRAINT mcp_servers_stdio_disabled_check")
        await db.execute(
            "INSERT INTO mcp_servers (tenant_id, name, transport, config) VALUES"
            " ('acme', 'row-sh', 'stdio', $1)",
            {"command": "/bin/sh", "args": ["-c", f"touch {marker}"], "env": {}},
        )
        tenant_entries: dict[str, Any] = {
            "cfg-touch": {"command": "/usr/bin/touch", "args": [str(marker)]},
            "cfg-loop": {"url": f"http://127.0.0.1:{internal.port}/mcp"},
            "cfg-meta": {"url": "http://169.254.169.254/latest/meta-data/"},
            "cfg-cat": {"catalog": "calc", "env": {"LD_PRELOAD": "/tmp/evil.so"}},
            "cfg-host": {"url": "https://x.example/mcp", "headers": {"Host": "internal"}},
        }
        name = _loopback_name()
        if name is not None:  # caught when the worker connects, not by the URL check
            tenant_entries["cfg-name"] = {"url": f"http://{name}:{internal.port}/mcp"}
        await db.execute(
            "UPDATE tenants SET mcp = $1 WHERE id = 'acme'", {"mcpServers": tenant_entries}
        )

        fake_llm.add(Turn(text="nothing to run"))
        created = await api.post("/v1/tasks", json={"agent_orch": "llm", "query": "go"})
        assert created.status_code == 201, created.text
        task = await wait_status(api, created.json()["id"], "DONE")
        events = (await api.get(f"/v1/tasks/{task['id']}/events")).json()["items"]

    assert not marker.exists()
    assert internal.connections == 0
    tools = set(fake_llm.requests[-1].tool_names)
    assert "ops__add" in tools  # the operator's server ran
    assert not {t for t in tools if t.startswith(("row-", "cfg-"))}
    reported = next(e["data"]["unavailable"] for e in events if e["event_type"] == "mcp_servers")
    expected = {"row-sh", *tenant_entries}
    assert set(reported) == expected, reported
    for key in ("row-sh", "cfg-touch"):
        assert "operator's configuration" in reported[key]
    # the tenant is told it was refused; which kind of address it was stays in the worker log
    for key in ("cfg-loop", "cfg-meta", *(["cfg-name"] if name is not None else [])):
        assert reported[key] == "refused: an internal address", reported[key]
    log = worker.log()
    assert "server=cfg-loop reason=the url's host is refused: 127.0.0.1" in log
    assert "(link-local)" in log
    assert "LD_PRELOAD" in reported["cfg-cat"]
    assert "'Host' may not be set" in reported["cfg-host"]
    if name is not None:
        assert f"refused by the network policy host={name} reason=127." in log
        assert "(loopback)" in log
    # the only process the worker started is the operator's server
    children = psutil.Process(worker.proc.pid).children(recursive=True)
    assert [c.cmdline()[-1] for c in children] == [str(MCP_SERVER)]


async def test_a_tenant_may_add_only_so_many_mcp_servers(
    db: Database, start_process: StartProcess, tmp_path: Path
) -> None:
    admin = (await ApiKeyRepository(db).create("acme", role=Role.ADMIN)).key
    config = write_mcp_config(tmp_path / "mcp.json")
    _api, url = await start_api(
        start_process,
        {"PROCESSGPT_MCP_CONFIG": str(config), "PROCESSGPT_MCP_MAX_SERVERS_PER_TENANT": "2"},
    )
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as api:
        for name in ("a", "b"):
            added = await api.post("/v1/mcp-servers", json={"name": name, "catalog": "calc"})
            assert added.status_code == 201, added.text
        refused = await api.post("/v1/mcp-servers", json={"name": "c", "catalog": "calc"})
        assert refused.status_code == 409 and error_code(refused) == "too_many_mcp_servers"
        assert "PROCESSGPT_MCP_MAX_SERVERS_PER_TENANT" in refused.json()["error"]["message"]
        assert (await api.delete("/v1/mcp-servers/a")).status_code == 204
        again = await api.post("/v1/mcp-servers", json={"name": "c", "catalog": "calc"})
        assert again.status_code == 201, again.text
    assert await db.fetchval("SELECT count(*) FROM mcp_servers") == 2


async def test_a_key_file_open_to_others_is_refused_without_naming_it(
    db: Database, start_process: StartProcess, tmp_path: Path
) -> None:
    admin = (await ApiKeyRepository(db).create("acme", role=Role.ADMIN)).key
    data_dir = tmp_path / "operator-data-dir"
    data_dir.mkdir()
    (data_dir / "secret.key").write_text(Fernet.generate_key().decode() + "\n")
    (data_dir / "secret.key").chmod(0o644)
    _api, url = await start_api(
        start_process, {"PROCESSGPT_SECRET_KEYS": "", "PROCESSGPT_DATA_DIR": str(data_dir)}
    )
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as api:
        body = {"name": "web", "url": "https://mcp.example.com/mcp", "headers": {"A": "secret"}}
        refused = await api.post("/v1/mcp-servers", json=body)
    assert refused.status_code == 500 and error_code(refused) == "secrets_unavailable"
    assert "chmod 600" in refused.text and "operator-data-dir" not in refused.text
    assert await db.fetchval("SELECT count(*) FROM mcp_servers") == 0

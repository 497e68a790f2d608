"""No secret in any log line, at DEBUG, from every process of a full run.

Real ``processgpt api`` and ``processgpt worker --agent llm`` processes with
``PROCESSGPT_LOG_LEVEL=DEBUG``; an ``llm`` task that calls MCP servers over stdio (the
operator's, a secret in its env; a catalog entry the tenant enabled, a secret in its env)
and over streamable HTTP (the tenant's, a secret header, userinfo and a query token in its
URL); WebSocket chats opened with ``?api_key=`` and ``?token=``; requests with an API key in
``X-API-Key`` and with a JWT. Every planted value is first shown to have travelled (the MCP
servers saw them, the credentials were accepted), then searched for in every log line.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from processgpt.protocols.ws_chat import MsgEventEnd, MsgStatus, MsgUserMessage, ServerMessage
from tests.api.conftest import MCP_SERVER, start_api, write_mcp_config
from tests.api.test_tasks_api import wait_status
from tests.fake_llm import FakeLLM, Turn
from tests.support import StartProcess

LLM_KEY = "sk-planted-llm-key-7c1d"
JWT_SECRET = "planted-jwt-secret-5be0a7d2-long-enough-for-hs256"
STDIO_ENV = "planted-stdio-env-secret-91aa"
CATALOG_ENV = "planted-catalog-env-secret-3f0e"
HEADER = "planted-http-header-secret-c44b"
URL_PASSWORD = "planted-url-password-08d2"
URL_TOKEN = "planted-url-query-token-e61f"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def http_mcp_port() -> Iterator[int]:
    """The test MCP server on streamable HTTP (its own logs are not ours: discarded)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(MCP_SERVER), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin"},
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("the MCP HTTP server did not start") from None
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


def _tool_results(fake_llm: FakeLLM) -> dict[str, Any]:
    """What each tool call returned, by tool name, from the model's next request."""
    request = next(r for r in fake_llm.requests if any(m["role"] == "tool" for m in r.messages))
    calls = {
        c["id"]: c["function"]["name"]
        for m in request.messages
        if m["role"] == "assistant"
        for c in m.get("tool_calls") or []
    }
    return {calls[m["tool_call_id"]]: m["content"] for m in request.messages if m["role"] == "tool"}


async def _chat(
    url: str, chat_id: str, fake_llm: FakeLLM, query: str = "", headers: Any = None
) -> None:
    """One chat turn over a WebSocket opened with a credential in the query string or in a
    header."""
    fake_llm.add(Turn(text=f"hello from {chat_id}"))
    ws_url = url.replace("http://", "ws://") + f"/v1/agent_ws/{chat_id}/?agent=llm&{query}"
    async with connect(ws_url, additional_headers=headers) as ws:
        assert isinstance(ServerMessage.validate_json(await ws.recv()), MsgStatus)
        await ws.send(MsgUserMessage(text="hi").model_dump_json())
        while not isinstance(ServerMessage.validate_json(await ws.recv()), MsgEventEnd):
            pass


async def test_no_secret_reaches_any_log_line_at_debug(
    db: Database,
    start_process: StartProcess,
    fake_llm: FakeLLM,
    http_mcp_port: int,
    tmp_path: Path,
) -> None:
    key = (await ApiKeyRepository(db).create("acme", role=Role.ADMIN)).key
    token = jwt.encode(
        {"tenant_id": "acme", "exp": int(time.time()) + 600, "sub": "u1"}, JWT_SECRET
    )
    config = write_mcp_config(
        tmp_path / "mcp.json",
        {
            "ops": {
                "command": sys.executable,
                "args": [str(MCP_SERVER)],
                # it also prints its SECRET_TOKEN on stderr (see tests/mcp_server.py)
                "env": {"SECRET_TOKEN": STDIO_ENV, "PROCESSGPT_TEST_MCP_STDERR": "3"},
            }
        },
    )
    common = {
        "PROCESSGPT_LOG_LEVEL": "DEBUG",
        "PROCESSGPT_MCP_CONFIG": str(config),
        "PROCESSGPT_MCP_ALLOWED_NETWORKS": "127.0.0.1/32",
    }
    api_process, url = await start_api(
        start_process, {**common, "PROCESSGPT_JWT_SECRET": JWT_SECRET}
    )
    worker = start_process(
        "worker",
        "--agent",
        "llm",
        env={
            **common,
            "PROCESSGPT_LLM_BASE_URL": fake_llm.base_url,
            "PROCESSGPT_LLM_API_KEY": LLM_KEY,
        },
    )
    await worker.wait_for_log("worker started")

    mcp_url = f"http://mcpuser:{URL_PASSWORD}@127.0.0.1:{http_mcp_port}/mcp?token={URL_TOKEN}"
    async with (
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=30) as admin,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as member,
    ):
        for body in (
            {"name": "web", "url": mcp_url, "headers": {"X-Token": HEADER}},
            {"name": "cat", "catalog": "calc", "env": {"SECRET_TOKEN": CATALOG_ENV}},
        ):
            added = await admin.post("/v1/mcp-servers", json=body)
            assert added.status_code == 201, added.text
        listed = await member.get("/v1/mcp-servers")  # the JWT is accepted
        assert listed.status_code == 200 and {s["name"] for s in listed.json()} == {"web", "cat"}

        fake_llm.add(
            Turn(
                tool_calls=[
                    ("web__request_info", {}),
                    ("ops__environment", {}),
                    ("cat__environment", {}),
                ]
            ),
            Turn(text="done"),
        )
        created = await member.post("/v1/tasks", json={"agent_orch": "llm", "query": "go"})
        assert created.status_code == 201, created.text
        await wait_status(member, created.json()["id"], "DONE")
        await _chat(url, "with-key", fake_llm, query=f"api_key={key}")
        await _chat(url, "with-token", fake_llm, query=f"token={token}")
        await _chat(url, "with-header", fake_llm, headers={"Authorization": f"Bearer {token}"})

    # the planted values travelled: the MCP servers saw them, decrypted by the worker
    results = _tool_results(fake_llm)
    seen = json.loads(results["web__request_info"])
    assert seen["headers"]["x-token"] == HEADER
    basic = base64.b64encode(f"mcpuser:{URL_PASSWORD}".encode()).decode()
    assert seen["headers"]["authorization"] == f"Basic {basic}"
    assert seen["query"] == f"token={URL_TOKEN}"
    assert json.loads(results["ops__environment"])["SECRET_TOKEN"] == STDIO_ENV
    assert json.loads(results["cat__environment"])["SECRET_TOKEN"] == CATALOG_ENV

    # every line of every process, after they flushed and stopped
    for proc in (worker, api_process):
        proc.signal(signal.SIGTERM)
        await proc.wait()
    logs = {"api": api_process.log(), "worker": worker.log()}
    planted = {
        "api key": key.split("_", 2)[2],
        "jwt": token,
        "jwt signature": token.rsplit(".", 1)[1],
        "jwt secret": JWT_SECRET,
        "llm key": LLM_KEY,
        "stdio env": STDIO_ENV,
        "catalog env": CATALOG_ENV,
        "http header": HEADER,
        "url password": URL_PASSWORD,
        "url token": URL_TOKEN,
        "basic auth": basic,
        "secret keys": os.environ["PROCESSGPT_SECRET_KEYS"],
    }
    hits = [
        f"{process}: {what}: {line}"
        for process, text in logs.items()
        for line in text.splitlines()
        for what, secret in planted.items()
        if secret in line
    ]
    assert hits == []
    assert "level=DEBUG" in logs["api"] and "level=DEBUG" in logs["worker"]
    # the lines that held them exist
    assert "api_key=***" in logs["api"] and "token=***" in logs["api"]
    assert "authorization: ***" in logs["api"].lower()
    assert (
        "logger=processgpt.mcp.server.ops stderr tenant=acme line=starting with" in (logs["worker"])
    )

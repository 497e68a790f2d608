from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.support import ProcessGPTProcess, StartProcess, start_worker_process

MCP_SERVER = Path(__file__).resolve().parent.parent / "mcp_server.py"
CATALOG_ENV = ("PROCESSGPT_TEST_MCP_TAG", "SECRET_TOKEN", "API_KEY")


def write_mcp_config(path: Path, servers: dict[str, object] | None = None) -> Path:
    """An operator's mcp.json: ``servers`` for every task, and a catalog entry ``calc`` (the
    test MCP server over stdio) tenants may enable with values for :data:`CATALOG_ENV`."""
    catalog = {
        "calc": {
            "command": sys.executable,
            "args": [str(MCP_SERVER)],
            # Tenants set PROCESSGPT_TEST_MCP_TAG by the operator's opt-in (it does not look
            # like a credential); NODE_TLS_REJECT_UNAUTHORIZED is listed to be refused.
            "tenantEnv": [*CATALOG_ENV, "NODE_TLS_REJECT_UNAUTHORIZED"],
            "unsafeTenantEnv": ["PROCESSGPT_TEST_MCP_TAG"],
            "description": "the test MCP server",
        }
    }
    path.write_text(json.dumps({"mcpServers": servers or {}, "tenantCatalog": catalog}))
    return path


async def start_api(
    start_process: StartProcess, env: dict[str, str] | None = None
) -> tuple[ProcessGPTProcess, str]:
    """A real ``processgpt api`` process on a free port, and its URL."""
    server = start_process(
        "api",
        env={"PROCESSGPT_API_PORT": "0", "PROCESSGPT_SSE_HEARTBEAT": "0.5", **(env or {})},
    )
    await server.wait_for_log("api listening url=")
    match = re.search(r"api listening url=(\S+)", server.log())
    assert match is not None
    return server, match[1]


@dataclass
class Api:
    url: str
    key_a: str  # tenant "acme", admin
    key_b: str  # tenant "globex", admin
    mcp_config: Path  # the operator's mcp.json the api process reads

    def client(self, key: str | None = None, **kwargs: object) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key or self.key_a}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def api(db: Database, start_process: StartProcess, tmp_path: Path) -> AsyncIterator[Api]:
    """A real ``processgpt api`` process (free port; the operator's MCP file is
    ``Api.mcp_config``, see :func:`write_mcp_config`) and a worker process serving the
    ``streaming`` test agent and ``demo``."""
    mcp_config = write_mcp_config(tmp_path / "operator-mcp.json")
    keys = ApiKeyRepository(db)
    key_a = (await keys.create("acme", role=Role.ADMIN)).key
    key_b = (await keys.create("globex", role=Role.ADMIN)).key
    _server, url = await start_api(start_process, {"PROCESSGPT_MCP_CONFIG": str(mcp_config)})
    await start_worker_process(
        start_process, "--executor", "tests.agents.executors:StreamingExecutor", agent="streaming"
    )
    await start_worker_process(start_process, agent="demo")
    yield Api(url, key_a, key_b, mcp_config)

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.support import StartProcess, start_worker_process


@dataclass
class Api:
    url: str
    key_a: str  # tenant "acme", admin
    key_b: str  # tenant "globex", admin

    def client(self, key: str | None = None, **kwargs: object) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key or self.key_a}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def api(db: Database, start_process: StartProcess) -> AsyncIterator[Api]:
    """A real ``processgpt api`` process (free port) and a worker process serving the
    ``streaming`` test agent and ``demo``."""
    keys = ApiKeyRepository(db)
    key_a = (await keys.create("acme", role=Role.ADMIN)).key
    key_b = (await keys.create("globex", role=Role.ADMIN)).key
    server = start_process(
        "api", env={"PROCESSGPT_API_PORT": "0", "PROCESSGPT_SSE_HEARTBEAT": "0.5"}
    )
    await server.wait_for_log("api listening url=")
    match = re.search(r"api listening url=(\S+)", server.log())
    assert match is not None
    await start_worker_process(
        start_process, "--executor", "tests.agents.executors:StreamingExecutor", agent="streaming"
    )
    await start_worker_process(start_process, agent="demo")
    yield Api(match[1], key_a, key_b)

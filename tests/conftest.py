from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from processgpt.agents.llm import LlmExecutor
from processgpt.agents.task_runner import A2ATaskRunner
from processgpt.db.database import Database
from processgpt.db.tasks import TaskRepository
from processgpt.domain.task import RetryPolicy
from processgpt.runtime.worker import Worker, WorkerOptions
from tests.fake_llm import FakeLLM
from tests.s3_server import S3Server
from tests.support import PostgresServer, ProcessGPTProcess, StartProcess

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
# Stored secrets are encrypted; the test processes (API, workers, the tests themselves) share
# one key, and never create a key file in the home directory.
os.environ.setdefault("PROCESSGPT_SECRET_KEYS", Fernet.generate_key().decode())
# Files the test processes store stay out of the home directory too.
os.environ.setdefault("PROCESSGPT_FILES_DIR", tempfile.mkdtemp(prefix="processgpt-files-"))


@pytest.fixture(scope="session")
async def pg_server() -> AsyncIterator[PostgresServer]:
    data_dir = Path(tempfile.gettempdir()) / f"processgpt-tests-{os.getuid()}"
    server = await asyncio.to_thread(PostgresServer, data_dir)
    try:
        await server.tune_for_tests()
        await server.create_template()
        yield server
        await server.drop_template()
    finally:
        await asyncio.to_thread(server.close)


@pytest.fixture
async def db_url(pg_server: PostgresServer) -> AsyncIterator[str]:
    """A fresh database cloned from the migrated template."""
    url = await pg_server.create_database()
    yield url
    await pg_server.drop_database(url)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = await Database.connect(db_url, max_size=10)
    yield database
    await database.close()


@pytest.fixture
async def start_process(db_url: str, tmp_path: Path) -> AsyncIterator[StartProcess]:
    """Start a real ``processgpt`` process against the test database; killed at teardown."""
    started: list[ProcessGPTProcess] = []

    def start(
        *args: str, dsn: str | None = None, env: dict[str, str] | None = None
    ) -> ProcessGPTProcess:
        log_path = tmp_path / f"proc-{len(started)}.log"
        base_env = {"PROCESSGPT_POLL_INTERVAL": "0.2"}
        proc = ProcessGPTProcess(
            list(args),
            dsn=db_url if dsn is None else dsn,
            log_path=log_path,
            env={**base_env, **(env or {})},
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


StartWorker = Callable[..., Any]


@pytest.fixture
async def start_worker(db: Database) -> AsyncIterator[StartWorker]:
    """Start an in-process worker: ``await start_worker({"agent": executor}, **options)``."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(executors: dict[str, Any], **options: Any) -> Worker:
        options.setdefault("poll_interval", 0.2)
        options.setdefault("lease_seconds", 5.0)
        options.setdefault("retry", RetryPolicy(base_delay=0.1, max_delay=1.0))
        runners = {name: A2ATaskRunner(ex) for name, ex in executors.items()}
        worker = Worker(db, runners, WorkerOptions(**options))
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.started.wait(), 10)
        running.append((worker, task))
        return worker

    yield start
    for worker, _task in running:
        worker.stop()
    for _worker, task in running:
        await asyncio.wait_for(task, 30)


@pytest.fixture
def repo(db: Database) -> TaskRepository:
    return TaskRepository(db)


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    """The one stand-in: a scripted OpenAI-compatible server on 127.0.0.1."""
    server = await FakeLLM().start()
    yield server
    await server.stop()


@pytest.fixture
async def executors() -> AsyncIterator[list[LlmExecutor]]:
    """LLM executors a test builds; closed (clients, MCP connections) at teardown."""
    made: list[LlmExecutor] = []
    yield made
    for executor in made:
        await executor.aclose()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3-compatible server, a real HTTP server on 127.0.0.1 (a free port)."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only storage tests load it

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()

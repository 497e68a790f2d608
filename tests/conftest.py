from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from processgpt.db.database import Database
from tests.support import PostgresServer

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())


@pytest.fixture(scope="session")
async def pg_server() -> AsyncIterator[PostgresServer]:
    data_dir = Path(tempfile.gettempdir()) / f"processgpt-tests-{os.getuid()}"
    server = PostgresServer(data_dir)
    await server.tune_for_tests()
    await server.create_template()
    yield server


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

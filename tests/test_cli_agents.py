"""``processgpt agents create|list|delete`` against a real database."""

from __future__ import annotations

import json

from processgpt.db.database import Database
from tests.support import cli


async def test_agents_create_list_delete(db: Database, db_url: str) -> None:
    created = await cli(
        db_url,
        "agents",
        "create",
        "writer",
        "--orch",
        "llm",
        "--model",
        "m-1",
        "--instructions",
        "Write well.",
        "--tools",
        "calc, search__lookup",
        "--tenant",
        "acme",
    )
    assert created.returncode == 0, created.stderr
    profile = json.loads(created.stdout)
    assert profile["name"] == "writer" and profile["tools"] == ["calc", "search__lookup"]
    assert await db.fetchval("SELECT tenant_id FROM agents WHERE name = 'writer'") == "acme"

    listed = await cli(db_url, "agents", "list", "--tenant", "acme")
    assert listed.returncode == 0 and "writer" in listed.stdout and "m-1" in listed.stdout
    other = await cli(db_url, "agents", "list")  # the default tenant
    assert other.returncode == 0 and "writer" not in other.stdout

    for args, code in [
        (["agents", "create", "x", "--orch", "nobody"], "unknown_agent"),
        (["agents", "create", "Bad Name", "--orch", "llm"], "invalid_input"),
        (["agents", "create", "writer", "--orch", "llm", "--tenant", "acme"], "name_taken"),
        (["agents", "delete", "writer"], "agent_not_found"),  # another tenant's
    ]:
        result = await cli(db_url, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"error: {code}:" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr

    deleted = await cli(db_url, "agents", "delete", "writer", "--tenant", "acme")
    assert deleted.returncode == 0, deleted.stderr
    assert await db.fetchval("SELECT count(*) FROM agents") == 0

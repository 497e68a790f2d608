"""``processgpt memory``: the Agent Boss's commands over a real API process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.cli.conftest import RunningApi, run_cli


@pytest.mark.timeout(400)
async def test_memory_commands(db: Database, api: RunningApi, data_dir: Path) -> None:
    admin = RunningApi(api.url, (await ApiKeyRepository(db).create("default", role=Role.ADMIN)).key)

    async def cli(*args: str) -> tuple[int, str, str]:
        done = await run_cli("memory", *args, *admin.flags, data_dir=data_dir)
        return done.returncode, done.stdout, done.stderr

    code, out, err = await cli("teach", "보고서는 항상 표 형식으로", "--agent", "writer", "--pin")
    assert code == 0, err
    item_id = out.split()[0]
    assert "active" in out and "agent=writer" in out
    code, out, err = await cli("search", "보고서 형식", "--agent", "writer")
    assert code == 0 and item_id in out, err
    code, out, _ = await cli("search", "보고서 형식", "--agent", "other")
    assert code == 0 and out.strip() == ""
    code, out, err = await cli(
        "correct", item_id, "보고서는 표와 한 줄 요약으로", "--reason", "요약"
    )
    assert code == 0 and out.startswith("superseded by "), err
    new_id = out.split()[2]
    code, out, _ = await cli("history", item_id)
    assert [line.split()[1] for line in out.strip().splitlines()] == ["created", "superseded"]
    code, out, _ = await cli("show", new_id)
    assert json.loads(out)["pinned"] is True
    code, out, _ = await cli("list", "--status", "active")
    assert [line.split()[0] for line in out.strip().splitlines()] == [new_id]
    code, out, _ = await cli("teach", "답변은 짧게", "--propose")
    proposal = out.split()[0]
    code, out, _ = await cli("proposals")
    assert [line.split()[0] for line in out.strip().splitlines()] == [proposal]
    code, out, _ = await cli("approve", proposal)
    assert code == 0 and "active" in out
    code, _, err = await cli("forget")
    assert code == 2 and err.startswith("error: invalid_input:")
    code, out, _ = await cli("forget", "--agent", "writer")
    assert code == 0 and out.strip() == "deleted 1"
    code, out, _ = await cli("policy", "review", "--agent", "writer")
    assert code == 0 and "auto_activate=False" in out
    code, _, err = await cli("retire", new_id)
    assert code == 2 and err.startswith("error: invalid_state:")
    code, _, err = await cli("show", "00000000-0000-0000-0000-000000000000")
    assert code == 2 and err.startswith("error: memory_not_found:")

    member = await run_cli("memory", "teach", "x", *api.flags, data_dir=data_dir)
    assert member.returncode == 2 and member.stderr.startswith("error: forbidden:")

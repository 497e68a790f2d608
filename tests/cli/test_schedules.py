"""``processgpt schedules``: create, list, show, disable, enable, delete over a real API
process."""

from __future__ import annotations

import json
from pathlib import Path

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.cli.conftest import RunningApi, run_cli


async def test_schedules_commands(db: Database, api: RunningApi, data_dir: Path) -> None:
    await db.execute("INSERT INTO orchestrators (name) VALUES ('demo')")
    admin = RunningApi(api.url, (await ApiKeyRepository(db).create("default", role=Role.ADMIN)).key)

    async def cli(*args: str) -> tuple[int, str, str]:
        done = await run_cli("schedules", *args, *admin.flags, data_dir=data_dir)
        return done.returncode, done.stdout, done.stderr

    code, out, err = await cli(
        "create", "digest", "write the digest", "--agent", "demo", "--cron", "0 9 * * MON-FRI",
        "--timezone", "Europe/Berlin", "--input", '{"steps": 1}',
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("schedule ") and "digest created; next run" in out

    code, _out, err = await cli("create", "bad", "--agent", "demo", "--cron", "61 * * * *")
    assert code == 2 and err.startswith("error: invalid_cron:")
    code, _out, err = await cli(
        "create", "bad", "--agent", "demo", "--cron", "@daily", "--timezone", "Nowhere/Town"
    )
    assert code == 2 and err.startswith("error: unknown_timezone:")
    code, _out, err = await cli("create", "bad", "--cron", "@daily")
    assert code == 2 and err.startswith("error: invalid_input:")

    code, out, err = await cli("list")
    assert code == 0, err
    (line,) = out.strip().splitlines()
    assert "digest" in line and "0 9 * * MON-FRI" in line and "Europe/Berlin" in line

    code, out, _err = await cli("show", "digest")
    shown = json.loads(out)
    assert shown["task"]["input"] == {"steps": 1} and shown["enabled"] is True
    code, out, _err = await cli("disable", "digest")
    assert code == 0 and out.strip().endswith("digest disabled")
    code, out, _err = await cli("enable", shown["id"])
    assert code == 0 and out.strip().endswith("digest enabled")
    code, out, _err = await cli("delete", "digest")
    assert code == 0 and out.strip().endswith("digest deleted")
    code, _out, err = await cli("delete", "digest")
    assert code == 2 and err.startswith("error: schedule_not_found:")
    code, out, _err = await cli("list")
    assert code == 0 and out.strip() == ""

    member = await run_cli(
        "schedules", "create", "x", "--agent", "demo", "--cron", "@daily", *api.flags,
        data_dir=data_dir,
    )  # fmt: skip
    assert member.returncode == 2 and member.stderr.startswith("error: forbidden:")

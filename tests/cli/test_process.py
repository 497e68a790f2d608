"""``processgpt process deploy``: a definition file published over a real API process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.cli.conftest import RunningApi, run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "processes"


@pytest.fixture
async def admin(db: Database, api: RunningApi) -> RunningApi:
    """The API with a key of a tenant admin (publishing needs one)."""
    key = (await ApiKeyRepository(db).create("default", role=Role.ADMIN)).key
    return RunningApi(api.url, key)


async def test_a_member_may_not_deploy(api: RunningApi, data_dir: Path) -> None:
    result = await run_cli(
        "process", "deploy", str(EXAMPLES / "parallel_review.json"), *api.flags, data_dir=data_dir
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: forbidden:")


async def test_deploy_json_and_bpmn_then_again(
    db: Database, admin: RunningApi, data_dir: Path
) -> None:
    forms = str(EXAMPLES / "expense_approval.forms.json")
    first = await run_cli(
        "process", "deploy", str(EXAMPLES / "expense_approval.json"), "--forms", forms,
        *admin.flags, data_dir=data_dir,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "process definition expense_approval version 1 published"
    again = await run_cli(
        "process", "deploy", str(EXAMPLES / "expense_approval.json"), "--forms", forms,
        *admin.flags, data_dir=data_dir,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "version 1 unchanged" in again.stdout
    bpmn = await run_cli(
        "process", "deploy", str(EXAMPLES / "expense_approval.bpmn"), "--id", "expense_bpmn",
        *admin.flags, data_dir=data_dir,
    )  # fmt: skip
    assert bpmn.returncode == 0, bpmn.stderr
    assert bpmn.stdout.strip() == "process definition expense_bpmn version 1 published"
    rows = await db.fetch("SELECT id, version, format FROM proc_def ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("expense_approval", 1, "processgpt_json"),
        ("expense_bpmn", 1, "bpmn"),
    ]


async def test_problems_are_printed_one_per_line(
    db: Database, admin: RunningApi, data_dir: Path, tmp_path: Path
) -> None:
    definition = json.loads((EXAMPLES / "parallel_review.json").read_text())
    definition["sequences"].append({"id": "loose", "source": "sign", "target": "ghost"})
    definition["activities"].append({"id": "island", "type": "userTask", "role": "sales"})
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(definition))
    result = await run_cli("process", "deploy", str(path), *admin.flags, data_dir=data_dir)
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: definition_invalid: 3 problems:"
    assert sorted(lines[1:]) == [
        "  island: not reachable from a start event",
        "  island: nothing leaves this task: add a flow (or an end event)",
        "  loose: target 'ghost' does not exist",
    ]
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{nope")
    refused = await run_cli("process", "deploy", str(bad_json), *admin.flags, data_dir=data_dir)
    assert refused.returncode == 2 and "error: invalid_json:" in refused.stderr
    missing = await run_cli(
        "process", "deploy", str(tmp_path / "none.bpmn"), *admin.flags, data_dir=data_dir
    )
    assert missing.returncode == 2 and "error: invalid_input: cannot read" in missing.stderr
    assert await db.fetchval("SELECT count(*) FROM proc_def") == 0

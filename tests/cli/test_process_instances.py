"""``processgpt process start|show|list|cancel|message|resolve``, ``worklist`` and ``task
complete``: a process run from the command line against a real API process."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from processgpt.cli.common import CliError
from processgpt.cli.process_instances import parse_roles, parse_vars
from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.api.test_process_instances_api import FORMS, purchase
from tests.cli.conftest import RunningApi, run_cli

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_vars_are_json_when_they_parse_and_dotted_names_nest() -> None:
    assert parse_vars(
        ["days=3", "name=Kim", "ok=true", 'tags=["a"]', "form.amount=5", "form.note=x y", "e="]
    ) == {
        "days": 3,
        "name": "Kim",
        "ok": True,
        "tags": ["a"],
        "form": {"amount": 5, "note": "x y"},
        "e": "",
    }
    assert parse_roles(["manager=kim@example.com"]) == {"manager": "kim@example.com"}
    for bad in (["novalue"], ["=3"], ["a..b=1"], ["a=1", "a.b=2"]):
        with pytest.raises(CliError):
            parse_vars(bad)
    with pytest.raises(CliError):
        parse_roles(["manager"])


async def test_a_process_from_start_to_end(
    db: Database, api: RunningApi, data_dir: Path, tmp_path: Path
) -> None:
    admin = (await ApiKeyRepository(db).create("default", role=Role.ADMIN)).key
    definition, forms = tmp_path / "purchase.json", tmp_path / "forms.json"
    definition.write_text(json.dumps(purchase()))
    forms.write_text(json.dumps(FORMS))
    deployed = await run_cli(
        "process", "deploy", str(definition), "--forms", str(forms),
        "--url", api.url, "--api-key", admin, data_dir=data_dir,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr

    started = await run_cli(
        "process", "start", "purchase", "--var", "note=pens", "--var", "count=3",
        "--role", "manager=lee@example.com", "--name", "pens", "--idempotency-key", "o-1",
        *api.flags, data_dir=data_dir,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    lines = started.stdout.splitlines()
    match = re.fullmatch(rf"process ({UUID}) RUNNING  purchase v1  'pens'", lines[0])
    assert match is not None, started.stdout
    proc_id = match[1]
    assert lines[1] == "waiting at: request"
    open_line = re.match(rf"  open: ({UUID})  TODO +request ", lines[2])
    assert open_line is not None, lines
    request_id = open_line[1]
    assert "user=clerk@example.com role=clerk" in lines[2]

    mine = await run_cli("worklist", "--role", "clerk", *api.flags, data_dir=data_dir)
    assert mine.returncode == 0, mine.stderr
    assert [line.split()[0] for line in mine.stdout.splitlines()] == [request_id]
    assert f"process={proc_id}" in mine.stdout

    bad = await run_cli(
        "task", "complete", request_id, "--output", '{"request_form": {"amount": "lots"}}',
        *api.flags, data_dir=data_dir,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: invalid_input: field 'amount': must be a number")
    not_object = await run_cli(
        "task", "complete", request_id, "--output", "[1]", *api.flags, data_dir=data_dir
    )
    assert not_object.returncode == 2 and "must be a JSON object" in not_object.stderr

    done = await run_cli(
        "task", "complete", request_id, "--output", '{"request_form": {"amount": 5}}',
        *api.flags, data_dir=data_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"task {request_id} DONE"
    again = await run_cli(
        "tasks", "complete", request_id, "--output", "{}", *api.flags, data_dir=data_dir
    )
    assert again.returncode == 2 and again.stderr.startswith("error: invalid_state:")

    shown = await run_cli("process", "show", proc_id, *api.flags, data_dir=data_dir)
    assert shown.returncode == 0, shown.stderr
    assert "waiting at: approve" in shown.stdout
    assert "user=lee@example.com role=manager" in shown.stdout
    assert '"note": "pens"' in shown.stdout and '"count": 3' in shown.stdout
    assert re.search(r"history \(the last \d+ of \d+ lines\):", shown.stdout)
    assert "step_completed" in shown.stdout and "request#1" in shown.stdout

    listed = await run_cli("process", "list", "--status", "RUNNING", *api.flags, data_dir=data_dir)
    assert listed.returncode == 0 and listed.stdout.startswith(f"{proc_id}  RUNNING")

    message = await run_cli("process", "message", proc_id, "payment", *api.flags, data_dir=data_dir)
    assert message.returncode == 2 and message.stderr.startswith("error: invalid_state:")

    cancelled = await run_cli(
        "process", "cancel", proc_id, "--reason", "not needed", *api.flags, data_dir=data_dir
    )
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"process {proc_id} CANCELLED")
    assert (await run_cli("worklist", *api.flags, data_dir=data_dir)).stdout == ""


async def test_refused_arguments(api: RunningApi, data_dir: Path) -> None:
    for args, code in (
        (("process", "start", "nothing"), "definition_not_found"),
        (("process", "start", "x", "--var", "novalue"), "invalid_input"),
        (("process", "start", "x", "--role", "manager"), "invalid_input"),
        (("process", "show", "not-an-id"), "invalid_input"),
        (("process", "message", "not-an-id", "m"), "invalid_input"),
        (("task", "complete", "nope", "--output", "{}"), "invalid_input"),
        (("task", "complete", str(uuid.uuid4()), "--output", "{x"), "invalid_json"),
    ):
        result = await run_cli(*args, *api.flags, data_dir=data_dir)
        assert result.returncode == 2, (args, result.stdout)
        assert result.stderr.startswith(f"error: {code}:"), (args, result.stderr)

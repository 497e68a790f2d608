"""The command's help: every command and action described, the environment each command
reads listed from the settings classes, no docstring markup, ``--version``."""

from __future__ import annotations

import argparse
import inspect
import re
from importlib.metadata import version
from pathlib import Path

import pytest

from processgpt.cli import ALIASES, build_parser, command
from processgpt.cli.parser import READS
from processgpt.config import ClientSettings, LlmSettings, Settings, environment_variables
from tests.cli.conftest import run_cli

MARKUP = re.compile(r"``|:(class|mod|func|meth|attr|data):")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help_lines(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help for a in action._choices_actions}
    return {}


def test_every_command_and_action_has_a_help_line_without_markup() -> None:
    parser = build_parser()
    top = parser.format_help()
    assert not MARKUP.search(top), top
    commands = _subcommands(parser)
    assert set(commands) - set(ALIASES) == set(READS)
    assert set(ALIASES) <= set(commands)
    assert all(inspect.iscoroutinefunction(command(name)) for name in commands)
    assert all(_help_lines(parser).values()), _help_lines(parser)
    for name, sub in commands.items():
        assert name in top
        text = sub.format_help()
        assert not MARKUP.search(text), text
        actions = _subcommands(sub)
        helps = _help_lines(sub)
        assert set(helps) == set(actions)
        assert all(helps.values()), (name, helps)
        for action in actions.values():
            assert all(a.help for a in action._actions if a.dest != "help"), action.prog


@pytest.mark.parametrize("command", sorted(READS))
def test_help_lists_the_environment_the_command_reads(command: str) -> None:
    text = _subcommands(build_parser())[command].format_help()
    for settings, fields in READS[command]:
        for var in environment_variables(settings, fields):
            assert re.search(rf"^  {var.name} +{re.escape(var.default)} ", text, re.M), (
                command,
                var,
            )


def test_serving_commands_read_all_their_settings() -> None:
    def names(command: str) -> set[str]:
        return {
            var.name for cls, fields in READS[command] for var in environment_variables(cls, fields)
        }

    every = {v.name for v in environment_variables(Settings)}
    assert names("up") >= every | {v.name for v in environment_variables(LlmSettings)}
    assert {"PROCESSGPT_API_HOST", "PROCESSGPT_API_PORT", "PROCESSGPT_JWT_SECRET"} <= names("api")
    assert {"PROCESSGPT_CONCURRENCY", "PROCESSGPT_LLM_BASE_URL"} <= names("worker")
    assert {"PROCESSGPT_URL", "PROCESSGPT_API_KEY", "PROCESSGPT_DATA_DIR"} <= names("submit")


def test_host_port_and_data_dir_flags() -> None:
    parser = build_parser()
    up = parser.parse_args(["up", "--port", "9000", "--host", "0.0.0.0", "--data-dir", "/d"])
    assert (up.port, up.host, up.data_dir) == (9000, "0.0.0.0", "/d")
    api = parser.parse_args(["api", "--port", "0", "--host", "::1", "--data-dir", "/d"])
    assert (api.port, api.host, api.data_dir) == (0, "::1", "/d")
    worker = parser.parse_args(["worker", "--agent", "demo", "--data-dir", "/d"])
    assert worker.data_dir == "/d"
    with pytest.raises(SystemExit):
        parser.parse_args(["api", "--port", "70000"])


def test_the_readme_documents_every_variable() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for cls in (Settings, LlmSettings, ClientSettings):
        for var in environment_variables(cls):
            assert f"`{var.name}" in readme, var.name


async def test_version(tmp_path: Path) -> None:
    result = await run_cli("--version", data_dir=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"processgpt {version('processgpt')}"

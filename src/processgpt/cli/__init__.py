"""The ``processgpt`` command (the composition root of its processes).

By concept: :mod:`~processgpt.cli.parser` (commands, flags, help),
:mod:`~processgpt.cli.serve` (``up``, ``api``, ``worker``), :mod:`~processgpt.cli.tasks`
(``submit``, ``tasks``: over the HTTP API, :mod:`~processgpt.cli.target` says which),
:mod:`~processgpt.cli.admin` (``migrate``, ``keys``, ``agents``: in the database).

Every error a user can cause prints ``error: <code>: <message>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from processgpt import logs
from processgpt.cli.admin import cmd_agents, cmd_keys, cmd_migrate
from processgpt.cli.common import CliError, Command, load_settings
from processgpt.cli.parser import build_parser
from processgpt.cli.serve import cmd_api, cmd_up, cmd_worker
from processgpt.cli.tasks import cmd_submit, cmd_tasks
from processgpt.config import Settings
from processgpt.domain.errors import ProcessGPTError

COMMANDS: dict[str, Command] = {
    "up": cmd_up,
    "api": cmd_api,
    "worker": cmd_worker,
    "submit": cmd_submit,
    "tasks": cmd_tasks,
    "migrate": cmd_migrate,
    "keys": cmd_keys,
    "agents": cmd_agents,
}

__all__ = ["COMMANDS", "CliError", "build_parser", "main"]


def _settings(args: argparse.Namespace) -> Settings:
    """The process's settings: the environment, with the command's flags over it."""
    return load_settings(
        Settings,
        data_dir=getattr(args, "data_dir", None),
        api_host=getattr(args, "host", None),
        api_port=getattr(args, "port", None),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except CliError as exc:
        print(f"error: {exc.code}: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        return asyncio.run(COMMANDS[args.command](settings, args))
    except CliError as exc:
        print(f"error: {exc.code}: {exc}", file=sys.stderr)
    except ProcessGPTError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"error: invalid_input: {where}: {first['msg']}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 2

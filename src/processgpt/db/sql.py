"""Named queries loaded from the ``.sql`` files beside this module.

A file holds blocks headed ``-- name: <query_name>``; :data:`QUERIES` maps each name to its
text. No SQL is ever built from user input: values always travel as bind parameters.
"""

from __future__ import annotations

import re
from importlib import resources

_HEADER = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def _load() -> dict[str, str]:
    queries: dict[str, str] = {}
    folder = resources.files("processgpt.db") / "queries"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text(encoding="utf-8")
        parts = _HEADER.split(text)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise RuntimeError(f"query {name!r} is defined twice")
            queries[name] = body.strip().rstrip(";")
    return queries


QUERIES: dict[str, str] = _load()

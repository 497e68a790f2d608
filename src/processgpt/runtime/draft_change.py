"""A draft a person changed before completing a work item, as something to learn from.

The ``draft_changed`` signal (queued by the database when a work item whose agent left a
draft is completed with another output) carries the draft, the output and the changed
top-level fields. :func:`draft_change` decides whether the change is substantial — a typo
fix is not worth a lesson — and describes it for the lesson extractor. Lessons learned from
it are only ever proposals for the Agent Boss: nobody said in words what was wrong, so the
runtime never activates what it guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

SUBSTANTIAL_BELOW = 0.9
"""A change is substantial when the draft and the output are less similar than this (difflib's
ratio of their text, 1.0: the same)..."""
SUBSTANTIAL_CHARS = 40
"""...and at least this many characters were inserted, deleted or replaced: a short note
added or a typo fixed is a touch-up, not a lesson."""
_COMPARED = 4000
"""Characters of each side compared (difflib is quadratic at worst)."""
_SHOWN = 1500
"""Characters of each changed field shown to the extractor."""


@dataclass(frozen=True)
class DraftChange:
    similarity: float
    fields: list[str]
    description: str
    """What changed, for the extractor (in place of a reviewer's words)."""
    draft: str
    """The changed fields as drafted (a correction's ``original``)."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def draft_change(diff: Any) -> DraftChange | None:
    """The change ``diff`` (a ``draft_changed`` row's) records, or None when it is not
    substantial (or not readable)."""
    if not isinstance(diff, dict):
        return None
    draft, output = diff.get("draft"), diff.get("output")
    if isinstance(draft, dict) and isinstance(output, dict):
        fields = [str(f) for f in diff.get("changed_fields") or []]
        before = {f: draft.get(f) for f in fields}
        after = {f: output.get(f) for f in fields}
    else:
        fields = []
        before, after = {"": draft}, {"": output}
    matcher = SequenceMatcher(None, _text(draft)[:_COMPARED], _text(output)[:_COMPARED])
    similarity = matcher.ratio()
    edited = sum(
        max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal"
    )
    if similarity >= SUBSTANTIAL_BELOW or edited < SUBSTANTIAL_CHARS:
        return None
    lines = [
        "A person substantially changed the agent's draft before completing the task "
        "(no words of feedback were given; learn what the change implies).",
    ]
    for name in before:
        label = f"field {name!r}" if name else "the answer"
        lines.append(f"- {label} drafted: {_text(before[name])[:_SHOWN]}")
        lines.append(f"  {label} final: {_text(after[name])[:_SHOWN]}")
    drafted = "\n".join(
        f"{name}: {_text(value)}" if name else _text(value) for name, value in before.items()
    )
    return DraftChange(
        similarity=round(similarity, 3),
        fields=fields,
        description="\n".join(lines),
        draft=drafted[:20000] or "(empty draft)",
    )

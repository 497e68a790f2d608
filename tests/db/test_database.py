"""The connection layer's JSON codec against a real server."""

from __future__ import annotations

import json

import pytest

from processgpt.db.database import Database
from processgpt.domain.events import decode_json

_TEXTS = [
    "{}",
    "[]",
    '"a"',
    "1",
    "-1.5e3",
    "true",
    "null",
    '{"a": [1, {"b": "ü\\u00e9"}], "c": null}',
    ' {"a": 1}',
    '{"a": 1} ',
    "\n[1]\n",
]


@pytest.mark.parametrize("text", _TEXTS)
def test_decode_json_reads_what_json_loads_reads(text: str) -> None:
    assert decode_json(text) == json.loads(text)


@pytest.mark.parametrize("text", ["", "{", "[1,", "{} x", "nope"])
def test_decode_json_refuses_what_json_loads_refuses(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        decode_json(text)


async def test_json_and_jsonb_values_come_back_as_python_values(db: Database) -> None:
    row = await db.fetchrow(
        "SELECT ' {\"a\": [1, 2]} '::json AS j, '{\"b\": \"é\"}'::jsonb AS jb, 'null'::jsonb AS n"
    )
    assert row is not None
    assert (row["j"], row["jb"], row["n"]) == ({"a": [1, 2]}, {"b": "é"}, None)

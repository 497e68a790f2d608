"""Checking a person's form data against the form's fields (``form_def.fields_json``, as
ProcessGPT describes them: ``[{"key", "text", "type", "options"?}]``). Pure: no I/O.

Accepted shapes of a completion's output: ``{form_id: {field: value}}`` (ProcessGPT's) or the
fields at the top level ``{field: value}``; in the first, other top-level keys are refused.
Every field is optional (a form may be saved partly filled); a value must fit its field:

* ``number`` / ``integer``: a number (not a boolean); ``integer`` a whole one;
* ``checkbox`` / ``boolean``: a boolean;
* ``select`` / ``radio`` with ``options``: one of the options (a list of strings or of
  ``{"value"}`` objects); ``multiselect``: a list of options;
* ``text``, ``textarea``, ``email``, ``date``, ``datetime``, ``time``, ``url``: a string;
* any other type (``file``, ``table``, custom ones): any JSON value.

``null`` clears a field and is always accepted. A key that is no field of the form is
refused. Every problem is reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_STRING_TYPES = frozenset(
    {"text", "textarea", "email", "date", "datetime", "datetime-local", "time", "url", "string"}
)


def form_problems(form_id: str, fields: Any, output: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``output`` for form ``form_id`` (empty: it fits)."""
    specs = _specs(fields)
    if form_id in output:
        inner = output[form_id]
        extra = sorted(k for k in output if k != form_id)
        problems = [f"{k!r} is not part of form {form_id!r}" for k in extra]
        if not isinstance(inner, Mapping):
            return [*problems, f"{form_id!r} must be an object of the form's fields"]
        values: Mapping[str, Any] = inner
    else:
        problems, values = [], output
    for key, value in values.items():
        spec = specs.get(key)
        if spec is None:
            problems.append(f"{key!r} is not a field of form {form_id!r}")
            continue
        problem = _value_problem(spec, value)
        if problem is not None:
            problems.append(f"field {key!r}: {problem}")
    return problems


def _specs(fields: Any) -> dict[str, Mapping[str, Any]]:
    specs: dict[str, Mapping[str, Any]] = {}
    if isinstance(fields, Mapping):  # {"fields": [...]} stored whole
        fields = fields.get("fields", [])
    for spec in fields if isinstance(fields, list) else []:
        if isinstance(spec, Mapping):
            key = spec.get("key") or spec.get("name") or spec.get("id")
            if isinstance(key, str):
                specs[key] = spec
    return specs


def _options(spec: Mapping[str, Any]) -> list[Any] | None:
    options = spec.get("options")
    if not isinstance(options, list) or not options:
        return None
    return [o.get("value", o.get("key")) if isinstance(o, Mapping) else o for o in options]


def _value_problem(spec: Mapping[str, Any], value: Any) -> str | None:  # noqa: PLR0911 - one per kind
    if value is None:
        return None
    kind = str(spec.get("type", "text")).lower()
    if kind in ("number", "integer", "int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if kind in ("integer", "int") and not float(value).is_integer():
            return "must be a whole number"
        return None
    if kind in ("checkbox", "boolean", "bool"):
        return None if isinstance(value, bool) else "must be true or false"
    options = _options(spec)
    if kind in ("multiselect", "checkboxes"):
        if not isinstance(value, list):
            return "must be a list"
        if options is not None and any(v not in options for v in value):
            return f"must be chosen from {options}"
        return None
    if kind in ("select", "radio", "dropdown") and options is not None:
        return None if value in options else f"must be one of {options}"
    if kind in _STRING_TYPES or kind in ("select", "radio", "dropdown"):
        return None if isinstance(value, str) else "must be text"
    return None

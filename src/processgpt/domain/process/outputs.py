"""How results become process variables (and variables become a task's input).

Rules (the engine applies them; the execution layer relies on them):

* A result is a JSON object. Its top-level keys are *candidates*. When the activity has a form
  (``form_id``) and the result holds an object under that id (ProcessGPT's
  ``{form_id: {field: value}}``), each field of it is a candidate too, so a field ``days``
  becomes variable ``days`` while the whole form stays available as variable ``form_id``
  (conditions can say ``days > 3`` or ``leave_form.days > 3``). A top-level key wins over a
  form field of the same name. A result without an object under the form's id is the form's
  fields sent at the top level: it is also the candidate ``form_id`` (so ``leave_form.days``
  finds ``days`` either way).
* ``output_data`` empty: every candidate is written.
* ``output_data`` not empty: only its names are written. A plain name takes the candidate of
  that name. A dotted name ``a.b`` takes ``result[a][b]`` (looking through the form as above)
  and writes it into the object variable ``a`` (created when absent), leaving ``a``'s other
  keys. A name the result does not carry leaves its variable unchanged.
* Values replace the variable's value whole (no deep merge); the variables are never mutated
  in place: the caller gets a new dict.

Input: a task's input is the values of ``input_data`` (dotted names read nested values; a
missing one is absent), or every variable when ``input_data`` is empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from processgpt.domain.process.model import Activity

_MISSING = object()


def map_output(
    activity: Activity | None, output: Mapping[str, Any], variables: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The variables after ``output`` is mapped in, and the names written (in order)."""
    candidates = _candidates(activity, output)
    names = activity.output_data if activity is not None else ()
    result = dict(variables)
    written: list[str] = []
    if not names:
        result.update(candidates)
        return result, list(candidates)
    for name in names:
        if "." not in name:
            if name in candidates:
                result[name] = candidates[name]
                written.append(name)
            continue
        head, *path = name.split(".")
        value = _lookup(candidates, [head, *path])
        if value is _MISSING:
            continue
        result[head] = _with_path(result.get(head), path, value)
        written.append(name)
    return result, written


def task_input(activity: Activity, variables: Mapping[str, Any]) -> dict[str, Any]:
    if not activity.input_data:
        return dict(variables)
    values: dict[str, Any] = {}
    for name in activity.input_data:
        value = _lookup(variables, name.split("."))
        if value is not _MISSING:
            values[name] = value
    return values


def merge(variables: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    """Key-by-key merge (messages, signals, children, incident fixes)."""
    return {**variables, **payload}


def _candidates(activity: Activity | None, output: Mapping[str, Any]) -> dict[str, Any]:
    form_id = activity.form_id if activity is not None else None
    if not form_id:
        return dict(output)
    form = output.get(form_id)
    if not isinstance(form, Mapping):
        # The form's fields sent at the top level (what a person's form submits): they are
        # the form, so ``form_id.field`` finds them as ``{form_id: {...}}`` would.
        return {**output, form_id: dict(output)}
    return {**form, **output}


def _lookup(values: Mapping[str, Any], path: Iterable[str]) -> Any:
    current: Any = values
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _with_path(container: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    base = dict(container) if isinstance(container, Mapping) else {}
    base[path[0]] = _with_path(base.get(path[0]), path[1:], value)
    return base

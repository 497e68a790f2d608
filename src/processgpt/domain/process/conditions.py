"""Conditions on sequence flows: CEL expressions over the process variables.

STAND-IN written by the engine branch with the agreed interface; the definitions branch owns
the real module (built-in allowlist, declared-variable checks at publish, richer messages) and
replaces this file when both merge. Contract (the engine relies only on this):

* :func:`compile_condition` compiles ``text`` once; it raises :class:`ConditionError` when the
  text does not compile, calls a function that is not an allowed CEL built-in, or references a
  variable outside ``variables``.
* :meth:`CompiledCondition.evaluate` returns the expression's value for ``values``; it raises
  :class:`ConditionError` when evaluation fails (a missing variable, a type mismatch) or the
  value is not a boolean. It never runs Python code taken from the definition.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import cel

from processgpt.domain.errors import InvalidInput

_FUNCTIONS = frozenset(
    {
        *("_&&_", "_||_", "!_", "-_", "_?_:_", "_[_]", "@in", "@not_strictly_false"),
        *("_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_", "_+_", "_-_", "_*_", "_/_", "_%_"),
        *("size", "matches", "startsWith", "endsWith", "contains"),
        *("int", "uint", "double", "string", "bool", "timestamp", "duration"),
    }
)
"""The CEL built-ins a condition may call (the parser's own names for operators included)."""


class ConditionError(InvalidInput):
    """A condition that does not compile, or that failed to evaluate to a boolean."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="condition")


@dataclass(frozen=True)
class CompiledCondition:
    """A compiled CEL expression, safe to evaluate many times (and to share)."""

    text: str
    variables: frozenset[str]
    _program: Any

    def evaluate(self, values: Mapping[str, Any]) -> bool:
        try:
            result = self._program.execute(dict(values))
        except Exception as exc:  # noqa: BLE001 -- the CEL runtime raises many builtin types
            raise ConditionError(f"condition {self.text!r} failed: {exc}") from None
        if not isinstance(result, bool):
            raise ConditionError(
                f"condition {self.text!r} is {type(result).__name__}, not a boolean"
            )
        return result


def compile_condition(text: str, variables: Collection[str]) -> CompiledCondition:
    try:
        program = cel.compile(text)
    except Exception as exc:  # noqa: BLE001 -- the CEL parser's types are not documented
        raise ConditionError(f"condition {text!r} does not compile: {exc}") from None
    calls = sorted(set(program.functions()) - _FUNCTIONS)
    if calls:
        raise ConditionError(f"condition {text!r} calls unknown functions: {', '.join(calls)}")
    referenced = frozenset(program.variables())
    unknown = sorted(referenced - set(variables))
    if unknown:
        raise ConditionError(f"condition {text!r} uses undeclared variables: {', '.join(unknown)}")
    return CompiledCondition(text=text, variables=referenced, _program=program)

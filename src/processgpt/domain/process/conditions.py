"""Conditions of sequence flows: CEL expressions over the process variables, compiled and
checked when a definition is published, evaluated when a gateway routes a token.

The language is CEL (https://cel.dev) through the ``common-expression-language`` package: a
non-Turing-complete expression language with no access to the host. Nothing in a definition
is ever handed to Python's ``eval``/``exec``. On top of what CEL already forbids, publishing
refuses:

* text over :data:`MAX_CONDITION_LENGTH` characters;
* any identifier starting with ``__`` (``__import__('os')``, ``a.__class__``,
  ``"x".__globals__``): never meaningful in a process, always an attempt at a host;
* a function outside :data:`ALLOWED_FUNCTIONS` (the standard operators and a documented set of
  CEL built-ins that work without host functions);
* a variable that is not a declared process variable (nor one of :data:`BUILTIN_VARIABLES`).
  Names bound by the comprehension macros (``list.exists(x, x > 1)``) are not variables.

At run time :meth:`CompiledCondition.evaluate` binds each variable the expression references
to its value (a declared variable with no value yet is ``null``), accepts only JSON values,
and returns a ``bool``; anything else (a type error, a missing map key, a non-bool result)
raises :class:`ConditionError`, which the engine turns into an incident.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cel

from processgpt.domain.errors import ConditionError
from processgpt.domain.process.model import Variable

__all__ = [
    "ALLOWED_FUNCTIONS",
    "BUILTIN_VARIABLES",
    "MAX_CONDITION_LENGTH",
    "CompiledCondition",
    "ConditionError",
    "compile_condition",
    "condition_values",
    "evaluate",
]

MAX_CONDITION_LENGTH = 4000
"""Characters; a routing decision longer than this is not a condition but a program."""

_MAX_VALUE_DEPTH = 64

BUILTIN_VARIABLES: frozenset[str] = frozenset()
"""Names every condition may use besides the declared variables (none yet: conditions read
process variables only, so a decision can be replayed from the instance's history)."""

_OPERATORS = frozenset(
    {
        "_&&_",
        "_||_",
        "!_",
        "-_",
        "_==_",
        "_!=_",
        "_<_",
        "_<=_",
        "_>_",
        "_>=_",
        "_+_",
        "_-_",
        "_*_",
        "_/_",
        "_%_",
        "_?_:_",
        "_[_]",
        "@in",
        "_in_",
        "@not_strictly_false",  # emitted by the all/exists macros
        "not_strictly_false",
    }
)
_BUILTINS = frozenset(
    {
        "size",
        "has",
        "matches",
        "startsWith",
        "endsWith",
        "contains",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "dyn",
        "timestamp",
        "duration",
        "getFullYear",
        "getMonth",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    }
)
ALLOWED_FUNCTIONS: frozenset[str] = _OPERATORS | _BUILTINS
"""Every function a condition may call: CEL's operators, ``size``, ``has``, ``matches``,
``startsWith``, ``endsWith``, ``contains``, the conversions ``int``, ``uint``, ``double``,
``string``, ``bytes``, ``dyn``, ``timestamp``, ``duration``, and the timestamp accessors
(``getFullYear`` … ``getMilliseconds``). The macros ``all``, ``exists``, ``exists_one``,
``map`` and ``filter`` expand to operators."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MACRO_BINDING = re.compile(
    r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,"
)


@dataclass(frozen=True)
class CompiledCondition:
    """A checked condition, ready to evaluate any number of times (thread-safe: it keeps no
    state between evaluations)."""

    text: str
    variables: frozenset[str]
    """The variables the expression reads (macro-bound names excluded)."""
    functions: frozenset[str]
    _program: Any = field(repr=False, compare=False)

    def evaluate(self, values: Mapping[str, Any]) -> bool:
        """The condition's verdict over ``values`` (the process variables by name). A
        referenced variable missing from ``values`` is ``null``. Raises
        :class:`ConditionError` when a value is not JSON, evaluation fails, or the result is
        not a bool."""
        context: dict[str, Any] = {}
        for name in self.variables:
            context[name] = _json_value(values.get(name), name, 0)
        try:
            result = self._program.execute(context)
        except Exception as exc:  # the CEL runtime raises several types; all mean "failed"
            raise ConditionError(
                f"condition {self.text!r} failed: {type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        if not isinstance(result, bool):
            raise ConditionError(
                f"condition {self.text!r} is not a boolean (it gave {type(result).__name__})"
            )
        return result


def compile_condition(
    text: str, variables: Collection[str], *, builtins: Collection[str] = BUILTIN_VARIABLES
) -> CompiledCondition:
    """Compile and check ``text`` against the declared ``variables``; raises
    :class:`ConditionError` naming the first problem found."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("a condition must be a non-empty expression")
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(
            f"a condition may be at most {MAX_CONDITION_LENGTH} characters ({len(text)} given)"
        )
    if "\x00" in text:
        raise ConditionError("a condition may not contain NUL characters")
    code = _code_outside_strings(text)
    dunder = sorted({m[0] for m in _IDENTIFIER.finditer(code) if m[0].startswith("__")})
    if dunder:
        raise ConditionError(
            f"condition {text!r} uses {', '.join(dunder)}: names starting with '__' are not allowed"
        )
    try:
        program = cel.compile(text)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ConditionError(f"condition {text!r} does not compile: {_first_line(exc)}") from None
    references = program.references()
    functions = frozenset(references.get("functions", ()))
    unknown = sorted(functions - ALLOWED_FUNCTIONS)
    if unknown:
        raise ConditionError(
            f"condition {text!r} calls {', '.join(unknown)}: not an allowed function"
        )
    bound = {m[1] for m in _MACRO_BINDING.finditer(code)}
    used = frozenset(references.get("variables", ())) - bound
    undeclared = sorted(used - set(variables) - set(builtins))
    if undeclared:
        raise ConditionError(
            f"condition {text!r} reads {', '.join(undeclared)}: not a declared process variable"
        )
    return CompiledCondition(text, used, functions, program)


def condition_values(
    variables: Iterable[Variable], instance_variables: Mapping[str, Any]
) -> dict[str, Any]:
    """The values conditions see: the instance's variables, plus each declared variable
    with a ``path`` (``form.field``) read from there (absent on the way: not set)."""
    values = dict(instance_variables)
    for variable in variables:
        if variable.path is None:
            continue
        current: Any = instance_variables
        for part in variable.path.split("."):
            if not isinstance(current, Mapping) or part not in current:
                current = None
                break
            current = current[part]
        if current is not None:
            values[variable.name] = current
    return values


def evaluate(text: str, values: Mapping[str, Any]) -> bool:
    """Compile (against the names in ``values``) and evaluate in one call: for tests and
    one-off checks; the engine keeps compiled conditions."""
    return compile_condition(text, values.keys()).evaluate(values)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _json_value(value: Any, name: str, depth: int) -> Any:
    """``value`` if it is JSON data (None, bool, int, float, str, list, dict with str keys),
    else :class:`ConditionError`. Host objects (functions above all) never reach CEL: its
    runtime would call a Python callable found in the context."""
    if depth > _MAX_VALUE_DEPTH:
        raise ConditionError(f"variable {name!r} is nested too deeply")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConditionError(f"variable {name!r} is not a finite number")
        return value
    if isinstance(value, list | tuple):
        return [_json_value(v, name, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ConditionError(f"variable {name!r} has a map key that is not a string")
        return {k: _json_value(v, name, depth + 1) for k, v in value.items()}
    raise ConditionError(f"variable {name!r} is a {type(value).__name__}, not JSON data")


def _code_outside_strings(text: str) -> str:
    """``text`` with the contents of its CEL string and bytes literals blanked out (quotes
    kept), so identifiers can be scanned without matching words inside strings."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        start = i
        raw = False
        # optional prefix: r, b, rb, br (any case) directly before a quote
        j = i
        while j < n and j - i < 2 and text[j] in "rRbB":
            j += 1
        if j < n and text[j] in "'\"" and (j == i or not _ident_char_before(text, i)):
            raw = any(c in "rR" for c in text[i:j])
            quote = text[j]
            triple = text[j : j + 3] == quote * 3
            delim = quote * 3 if triple else quote
            k = j + len(delim)
            while k < n:
                if not raw and text[k] == "\\":
                    k += 2
                    continue
                if text.startswith(delim, k):
                    k += len(delim)
                    break
                if not triple and text[k] == "\n":
                    break
                k += 1
            out.append(text[start:j] + delim + " " * max(0, k - j - 2 * len(delim)) + delim)
            i = k
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _ident_char_before(text: str, i: int) -> bool:
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")

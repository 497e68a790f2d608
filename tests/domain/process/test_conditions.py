"""Conditions: CEL compiled and checked at publish, evaluated at run time, never Python."""

from __future__ import annotations

from typing import Any

import pytest

from processgpt.domain.errors import ConditionError
from processgpt.domain.process.conditions import (
    MAX_CONDITION_LENGTH,
    compile_condition,
    condition_values,
    evaluate,
)
from processgpt.domain.process.model import Variable

DECLARED = ["amount", "approved", "tags", "customer", "decision", "form_a"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("__import__('os')", "names starting with '__'"),
        ("__import__('os').system('true')", "names starting with '__'"),
        ("amount.__class__", "names starting with '__'"),
        ("'x'.__globals__", "names starting with '__'"),
        ("customer.__class__.__mro__", "names starting with '__'"),
        ("getattr(amount, 'x')", "not an allowed function"),
        ("eval('1')", "not an allowed function"),
        ("open('/etc/passwd') == ''", "not an allowed function"),
        ("math.greatest(1, 2) > 0", "not an allowed function"),
        ("amount +", "does not compile"),
        ("amount > ", "does not compile"),
        ("lambda: 1", "does not compile"),
        ("salary > 10", "not a declared process variable"),
        ("amount > limit", "not a declared process variable"),
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("a\x00", "NUL"),
    ],
)
def test_unsafe_or_wrong_conditions_are_refused_at_compile_time(text: str, why: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(text, DECLARED)
    assert why in caught.value.message
    assert caught.value.code == "condition_error"


def test_dunder_inside_a_string_literal_is_only_text() -> None:
    condition = compile_condition("decision == '__import__' || decision == \"__x\"", DECLARED)
    assert condition.evaluate({"decision": "__import__"}) is True
    assert condition.evaluate({"decision": "other"}) is False


def test_huge_expressions_are_refused_before_compiling() -> None:
    text = " || ".join(["amount > 1"] * (MAX_CONDITION_LENGTH // 10))
    assert len(text) > MAX_CONDITION_LENGTH
    with pytest.raises(ConditionError, match="at most"):
        compile_condition(text, DECLARED)
    nested = "(" * 1500 + "amount > 1" + ")" * 1500
    with pytest.raises(ConditionError):
        compile_condition(nested, DECLARED)


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("amount > 1000", {"amount": 1500}, True),
        ("amount > 1000", {"amount": 999.5}, False),
        ("amount >= 1000.0", {"amount": 1000}, True),
        ("approved", {"approved": True}, True),
        ("!approved", {"approved": True}, False),
        ("decision == 'yes'", {"decision": "yes"}, True),
        ("decision.startsWith('ye') && size(decision) == 3", {"decision": "yes"}, True),
        ("decision.matches('^[a-z]+$')", {"decision": "yes"}, True),
        ("'vip' in tags", {"tags": ["new", "vip"]}, True),
        ("tags.exists(t, t == 'vip')", {"tags": ["new"]}, False),
        ("size(tags) == 0", {"tags": []}, True),
        ("customer.country == 'KR'", {"customer": {"country": "KR"}}, True),
        ("has(customer.vat)", {"customer": {}}, False),
        ("'rewrite' in form_a.status", {"form_a": {"status": ["rewrite"]}}, True),
        ("amount == null", {}, True),  # a declared variable without a value is null
        ("int(decision) > 2", {"decision": "3"}, True),
    ],
)
def test_evaluation_over_json_values(text: str, values: dict[str, Any], expected: bool) -> None:
    assert compile_condition(text, DECLARED).evaluate(values) is expected


@pytest.mark.parametrize(
    ("text", "values", "why"),
    [
        ("amount", {"amount": 3}, "not a bool"),
        ("decision", {"decision": "yes"}, "not a bool"),
        ("tags", {"tags": [True]}, "not a bool"),
        ("amount + 1 > 2", {"amount": "x"}, "failed"),
        ("customer.country == 'KR'", {"customer": {}}, "failed"),
        ("amount / 0 > 1", {"amount": 1}, "failed"),
        ("amount > 1", {"amount": None}, "failed"),
        ("amount > 1", {"amount": print}, "not JSON data"),
        ("approved", {"approved": float("nan")}, "not a finite number"),
        ("customer.x", {"customer": {1: 2}}, "not a string"),
    ],
)
def test_evaluation_errors_are_condition_errors(
    text: str, values: dict[str, Any], why: str
) -> None:
    condition = compile_condition(text, DECLARED)
    with pytest.raises(ConditionError, match=why):
        condition.evaluate(values)


def test_a_callable_in_the_values_is_never_called() -> None:
    called: list[int] = []
    condition = compile_condition("amount == null", DECLARED)
    with pytest.raises(ConditionError):
        condition.evaluate({"amount": lambda: called.append(1)})
    assert called == []


def test_macro_variables_are_not_process_variables() -> None:
    condition = compile_condition("tags.all(x, x != 'spam') && tags.map(y, y).size() > 0", DECLARED)
    assert condition.variables == {"tags"}
    assert condition.evaluate({"tags": ["a"]}) is True


def test_paths_give_form_fields_their_own_names() -> None:
    variables = [Variable("status", "any", path="review_form.status"), Variable("amount")]
    values = condition_values(variables, {"review_form": {"status": "ok"}, "amount": 5})
    assert values == {"review_form": {"status": "ok"}, "amount": 5, "status": "ok"}
    assert "status" not in condition_values(variables, {"review_form": "not a map"})
    assert evaluate("status == 'ok' && amount > 1", values) is True

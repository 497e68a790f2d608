"""A person's form data checked against the form's fields."""

from __future__ import annotations

from processgpt.domain.process.forms import form_problems

FIELDS = [
    {"key": "days", "text": "Days", "type": "number"},
    {"key": "count", "type": "integer"},
    {"key": "urgent", "type": "checkbox"},
    {"key": "kind", "type": "select", "options": ["sick", {"value": "holiday"}]},
    {"key": "tags", "type": "multiselect", "options": ["a", "b"]},
    {"key": "note", "type": "textarea"},
    {"key": "receipt", "type": "file"},
]


def test_values_that_fit_pass_in_both_shapes() -> None:
    good = {
        "days": 2.5,
        "count": 3,
        "urgent": False,
        "kind": "holiday",
        "tags": ["a"],
        "note": "x",
        "receipt": {"name": "r.pdf"},
    }
    assert form_problems("leave", FIELDS, good) == []
    assert form_problems("leave", FIELDS, {"leave": good}) == []
    assert form_problems("leave", {"fields": FIELDS}, {"note": None}) == []


def test_every_problem_is_reported() -> None:
    problems = form_problems(
        "leave",
        FIELDS,
        {
            "days": "2",
            "count": 1.5,
            "urgent": "yes",
            "kind": "party",
            "tags": ["c"],
            "note": 3,
            "extra": 1,
        },
    )
    assert len(problems) == 7
    assert any("'extra' is not a field" in p for p in problems)
    assert any("days" in p and "number" in p for p in problems)


def test_the_form_object_and_other_top_level_keys() -> None:
    assert form_problems("leave", FIELDS, {"leave": 3}) == [
        "'leave' must be an object of the form's fields"
    ]
    assert form_problems("leave", FIELDS, {"leave": {}, "other": 1}) == [
        "'other' is not part of form 'leave'"
    ]
    assert form_problems("leave", FIELDS, {"days": True}) == ["field 'days': must be a number"]

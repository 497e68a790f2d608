"""Whether a person's change of a draft is worth learning from, and how it is described."""

from __future__ import annotations

from processgpt.runtime.draft_change import draft_change


def test_a_rewritten_field_is_substantial_and_described() -> None:
    change = draft_change(
        {
            "draft": {"title": "Q3", "body": "Sales were fine this quarter, nothing to add."},
            "output": {"title": "Q3", "body": "| item | value |\n| sales | 100 |"},
            "changed_fields": ["body"],
        }
    )
    assert change is not None and change.fields == ["body"] and change.similarity < 0.9
    assert "field 'body' drafted: Sales were fine" in change.description
    assert "field 'body' final: | item | value |" in change.description
    assert "title" not in change.description  # unchanged fields are not shown
    assert change.draft == "body: Sales were fine this quarter, nothing to add."


def test_a_small_edit_or_an_unreadable_diff_is_not_a_lesson() -> None:
    text = "The quarterly report is attached to this message, with the figures of March."
    assert (
        draft_change(
            {"draft": {"body": text}, "output": {"body": text + "!"}, "changed_fields": ["body"]}
        )
        is None
    )
    # A short note added to a short answer: unlike enough, but a touch-up all the same.
    short = {"summary": "Rail travel, within the travel policy."}
    noted = {"summary": "Rail travel, within the travel policy. Receipt checked."}
    assert draft_change({"draft": short, "output": noted, "changed_fields": ["summary"]}) is None
    assert draft_change(None) is None
    assert draft_change("not an object") is None


def test_drafts_that_are_not_objects_are_compared_whole() -> None:
    change = draft_change(
        {"draft": "yes", "output": "no, the opposite: refunds need a manager's approval first"}
    )
    assert change is not None and change.fields == []
    assert "the answer drafted: yes" in change.description and change.draft == "yes"

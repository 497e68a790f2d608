"""How many tasks the claim loop asks for."""

from __future__ import annotations

import pytest

from processgpt.runtime.claims import claim_size


@pytest.mark.parametrize(
    ("held", "in_flight", "may_have_work", "expected"),
    [
        (0, 0, True, 5),  # a claim asks for half the concurrency
        (0, 0, False, 0),  # nothing says there is work
        (5, 1, True, 5),  # a second claim while the first is under way
        (7, 1, True, 0),  # ... only once half the slots are free
        (8, 0, True, 2),  # nothing under way: whatever is free
        (10, 0, True, 0),
        (0, 2, True, 0),  # two claims under way at most
    ],
)
def test_claim_size(held: int, in_flight: int, may_have_work: bool, expected: int) -> None:
    got = claim_size(concurrency=10, held=held, in_flight=in_flight, may_have_work=may_have_work)
    assert got == expected

"""Every collected test has exactly one tier marker (tests/support/tiers.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.support.tiers import PROBLEMS, TIERS, tier_problems

pytestmark = pytest.mark.unit


def test_every_collected_test_has_exactly_one_tier(request: pytest.FixtureRequest) -> None:
    problems = request.config.stash[PROBLEMS]
    assert not problems, "\n".join(problems)


@dataclass
class Item:
    nodeid: str
    marks: list[str] = field(default_factory=list)

    def iter_markers(self) -> list[pytest.Mark]:
        return [getattr(pytest.mark, name).mark for name in self.marks]


@pytest.mark.parametrize(
    ("marks", "ok"),
    [
        *[([tier], True) for tier in TIERS],
        (["unit", "slow", "pg"], True),
        ([], False),
        (["slow"], False),
        (["unit", "integration"], False),
        (["process", "process"], False),
    ],
)
def test_a_test_needs_exactly_one_tier(marks: list[str], ok: bool) -> None:
    assert (tier_problems([Item("t.py::test_x", marks)]) == []) is ok

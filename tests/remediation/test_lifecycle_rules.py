"""The remediation moves at their edges: direct execution without approval, and what a refused
move tells the client."""

from __future__ import annotations

from typing import get_args

import pytest

from causeflow.errors import InvalidTransition
from causeflow.remediation.lifecycle import STATUSES, TRANSITIONS, Status, check_move

pytestmark = pytest.mark.unit


def test_direct_execution_is_allowed_exactly_when_no_approval_is_required() -> None:
    check_move("proposed", "executed", requires_approval=False)
    with pytest.raises(InvalidTransition):
        check_move("proposed", "executed", requires_approval=True)


@pytest.mark.parametrize(
    ("current", "new"),
    [("rejected", "approved"), ("executed", "proposed"), ("approved", "rejected")],
)
def test_a_refused_move_says_which(current: str, new: str) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_move(current, new, requires_approval=False)
    assert str(info.value) == f"a remediation that is {current} cannot become {new}"
    assert info.value.details == {"status": current, "requested": new}


def test_the_statuses_are_the_four_of_the_reference() -> None:
    # docs/reference.md §7.4: proposed -> approved | rejected; approved -> executed.
    assert STATUSES == get_args(Status) == ("proposed", "approved", "rejected", "executed")


def test_rejected_and_executed_are_final() -> None:
    assert TRANSITIONS == {
        "proposed": {"approved", "rejected"},
        "approved": {"executed"},
        "rejected": set(),
        "executed": set(),
    }

"""The remediation state machine, from its table."""

from __future__ import annotations

import pytest

from causeflow.errors import InvalidTransition
from causeflow.remediation.lifecycle import STATUSES, can_move, check_move

pytestmark = pytest.mark.unit

ALLOWED = {
    ("proposed", "approved"),
    ("proposed", "rejected"),
    ("approved", "executed"),
}


@pytest.mark.parametrize("current", STATUSES)
@pytest.mark.parametrize("new", STATUSES)
def test_table_with_approval(current: str, new: str) -> None:
    assert can_move(current, new) is ((current, new) in ALLOWED)


@pytest.mark.parametrize("current", STATUSES)
@pytest.mark.parametrize("new", STATUSES)
def test_table_without_approval_adds_only_direct_execution(current: str, new: str) -> None:
    expected = (current, new) in ALLOWED or (current, new) == ("proposed", "executed")
    assert can_move(current, new, requires_approval=False) is expected


def test_check_move_raises_invalid_transition_with_details() -> None:
    check_move("proposed", "approved")
    with pytest.raises(InvalidTransition) as info:
        check_move("rejected", "approved")
    assert info.value.status == 409
    assert info.value.code == "invalid_transition"
    assert info.value.details == {"status": "rejected", "requested": "approved"}
    with pytest.raises(InvalidTransition):
        check_move("proposed", "executed")


def test_unknown_status_moves_nowhere() -> None:
    assert not can_move("archived", "approved")

"""What a refused incident move tells the client, unknown statuses, and which statuses release
their alert fingerprints (docs/reference.md §6.6: "open" means not resolved or closed)."""

from __future__ import annotations

import pytest

from causeflow.errors import InvalidTransition
from causeflow.incident.lifecycle import (
    RELEASES_FINGERPRINTS,
    STATUSES,
    TRANSITIONS,
    auto_target,
    can_move,
    check_move,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        ("closed", "open", []),
        ("resolved", "triaging", ["closed", "open"]),
        (
            "open",
            "remediating",
            ["awaiting_approval", "closed", "investigating", "resolved", "triaging"],
        ),
        ("failed", "remediating", ["closed", "investigating", "resolved"]),
        ("exploded", "open", []),
    ],
)
def test_a_refused_move_names_both_ends_and_what_is_allowed(
    current: str, new: str, allowed: list[str]
) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_move(current, new)
    error = info.value
    assert (error.status, error.code) == (409, "invalid_transition")
    assert str(error) == f"an incident cannot move from {current} to {new}"
    assert error.details == {"from": current, "to": new, "allowed": allowed}


@pytest.mark.parametrize(("current", "new"), [("exploded", "open"), ("open", "exploded"), ("", "")])
def test_unknown_statuses_never_move(current: str, new: str) -> None:
    assert can_move(current, new) is False


def test_the_table_names_every_status_and_only_statuses() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    assert all(targets <= set(STATUSES) for targets in TRANSITIONS.values())
    assert TRANSITIONS["closed"] == frozenset()


def test_resolved_and_closed_incidents_release_their_fingerprints_and_no_others() -> None:
    assert RELEASES_FINGERPRINTS == {"resolved", "closed"}


def test_an_unknown_trigger_is_named_in_the_error() -> None:
    with pytest.raises(ValueError) as info:
        auto_target("moon_phase", "open")
    assert str(info.value) == "unknown lifecycle trigger 'moon_phase'"

"""The incident state machine against the table of docs/reference.md §7.2, every pair."""

from __future__ import annotations

import itertools
import re

import pytest

from causeflow.errors import InvalidTransition
from causeflow.incident.lifecycle import (
    AUTO_MOVES,
    STATUSES,
    auto_target,
    can_move,
    check_move,
)
from causeflow_sdk.models.common import INCIDENT_STATUSES
from tests.support.reference import section, table_rows

pytestmark = pytest.mark.unit

# The transition table as docs/reference.md §7.2 writes it, so the document and the code are
# checked against each other: one row per status, its allowed targets in backquotes.
REFERENCE_TEXT = section("7.2")


def reference_pairs() -> set[tuple[str, str]]:
    pairs = set()
    for source, targets, *_ in table_rows(REFERENCE_TEXT):
        for target in re.findall(r"`([a-z_]+)`", targets):
            pairs.add((source.strip("`"), target))
    return pairs


def test_the_reference_tables_every_status() -> None:
    sources = [row[0].strip("`") for row in table_rows(REFERENCE_TEXT)]
    assert sorted(sources) == sorted(STATUSES)


LEGAL = reference_pairs()
ALL_PAIRS = list(itertools.product(STATUSES, STATUSES))


def test_statuses_are_the_catalogs() -> None:
    assert set(STATUSES) == set(INCIDENT_STATUSES)
    assert len(LEGAL) == 27


@pytest.mark.parametrize(("current", "new"), ALL_PAIRS)
def test_every_pair_follows_the_reference(current: str, new: str) -> None:
    legal = (current, new) in LEGAL
    assert can_move(current, new) is legal
    if legal:
        check_move(current, new)
    else:
        with pytest.raises(InvalidTransition) as info:
            check_move(current, new)
        assert info.value.status == 409 and info.value.code == "invalid_transition"


# trigger -> {current status: target}; statuses not listed: the move is skipped (None)
AUTO = {
    "investigation_progress": {"open": "investigating", "triaging": "investigating"},
    "approval_requested": {
        "open": "awaiting_approval",
        "triaging": "awaiting_approval",
        "investigating": "awaiting_approval",
    },
    "approval_granted": {"investigating": "remediating", "awaiting_approval": "remediating"},
    "approval_rejected": {"awaiting_approval": "investigating"},
    "approval_expired": {"awaiting_approval": "investigating"},
    "source_resolved": {
        s: "resolved"
        for s in ("open", "triaging", "investigating", "awaiting_approval", "remediating", "failed")
    },
}


@pytest.mark.parametrize(("trigger", "current"), list(itertools.product(AUTO, STATUSES)))
def test_automatic_moves(trigger: str, current: str) -> None:
    target = auto_target(trigger, current)
    assert target == AUTO[trigger].get(current)
    if target is not None:
        assert can_move(current, target)  # never outside the table


def test_every_trigger_is_tabled_and_unknown_ones_refused() -> None:
    assert set(AUTO) == set(AUTO_MOVES)
    with pytest.raises(ValueError):
        auto_target("moon_phase", "open")

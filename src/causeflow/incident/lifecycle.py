"""The incident state machine (docs/reference.md §7.2, §7.3): transition table, automatic moves.

Pure: no I/O, no clock. `check_move` is the whole rule for people (PATCH answers 409 otherwise);
`auto_target` says where one of the service's own triggers takes an incident, or None when the
move does not apply from its current status (the caller then skips it silently).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from causeflow.errors import InvalidTransition

STATUSES: tuple[str, ...] = (
    "open",
    "triaging",
    "investigating",
    "awaiting_approval",
    "remediating",
    "resolved",
    "closed",
    "failed",
)

TRANSITIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "open": frozenset({"triaging", "investigating", "awaiting_approval", "resolved", "closed"}),
        "triaging": frozenset({"investigating", "awaiting_approval", "resolved", "closed"}),
        "investigating": frozenset(
            {"awaiting_approval", "remediating", "resolved", "closed", "failed"}
        ),
        "awaiting_approval": frozenset({"remediating", "investigating", "resolved", "closed"}),
        "remediating": frozenset({"investigating", "resolved", "closed", "failed"}),
        "failed": frozenset({"investigating", "resolved", "closed"}),
        "resolved": frozenset({"closed", "open"}),
        "closed": frozenset(),
    }
)

# An incident in one of these no longer owns its alert fingerprints: a re-fire opens a new one.
RELEASES_FINGERPRINTS = frozenset({"resolved", "closed"})

# trigger -> (statuses it applies from, or None for "wherever the table allows"; target status).
# Rejection and expiry only undo an approval wait: from anywhere else (say remediating, for
# another remediation) sending the incident back to investigating would be wrong.
AUTO_MOVES: Mapping[str, tuple[frozenset[str] | None, str]] = MappingProxyType(
    {
        "investigation_progress": (frozenset({"open", "triaging"}), "investigating"),
        "approval_requested": (None, "awaiting_approval"),
        "approval_granted": (None, "remediating"),
        "approval_rejected": (frozenset({"awaiting_approval"}), "investigating"),
        "approval_expired": (frozenset({"awaiting_approval"}), "investigating"),
        "source_resolved": (None, "resolved"),
    }
)


def can_move(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def check_move(current: str, new: str) -> None:
    """Raise 409 invalid_transition unless the table allows current -> new."""
    if not can_move(current, new):
        allowed = sorted(TRANSITIONS.get(current, frozenset()))
        raise InvalidTransition(
            f"an incident cannot move from {current} to {new}",
            details={"from": current, "to": new, "allowed": allowed},
        )


def auto_target(trigger: str, current: str) -> str | None:
    """Where `trigger` moves an incident in `current`; None when it does not apply."""
    if trigger not in AUTO_MOVES:
        raise ValueError(f"unknown lifecycle trigger {trigger!r}")
    sources, target = AUTO_MOVES[trigger]
    if sources is not None and current not in sources:
        return None
    return target if can_move(current, target) else None

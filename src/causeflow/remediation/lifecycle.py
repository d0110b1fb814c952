"""The remediation state machine (pure): proposed -> approved | rejected; approved -> executed.

One addition (docs/reference.md §7.4): a remediation proposed with `requiresApproval: false` may
go straight from proposed to executed, since nobody is asked to approve it (the engine that
proposed it runs it and reports the outcome). Everything else is 409 `invalid_transition`.
"""

from __future__ import annotations

from typing import Literal

from causeflow.errors import InvalidTransition

Status = Literal["proposed", "approved", "rejected", "executed"]
STATUSES: tuple[Status, ...] = ("proposed", "approved", "rejected", "executed")

TRANSITIONS: dict[str, frozenset[str]] = {
    "proposed": frozenset({"approved", "rejected"}),
    "approved": frozenset({"executed"}),
    "rejected": frozenset(),
    "executed": frozenset(),
}


def can_move(current: str, new: str, *, requires_approval: bool = True) -> bool:
    """Whether a remediation in `current` may move to `new`."""
    if current == "proposed" and new == "executed":
        return not requires_approval
    return new in TRANSITIONS.get(current, frozenset())


def check_move(current: str, new: str, *, requires_approval: bool = True) -> None:
    """Raise 409 `invalid_transition` unless `current -> new` is allowed."""
    if not can_move(current, new, requires_approval=requires_approval):
        raise InvalidTransition(
            f"a remediation that is {current} cannot become {new}",
            details={"status": current, "requested": new},
        )

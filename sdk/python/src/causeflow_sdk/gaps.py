"""Gap detection for webhook receivers: which numbered deliveries have not arrived yet.

Every delivery of an event a subscription matched carries `X-CauseFlow-Subscription` and
`X-CauseFlow-Sequence` (1, 2, 3, ... per subscription, no gaps). A receiver feeds the headers of
each verified delivery to a `GapTracker`; it keeps, per subscription, the highest sequence up
to which everything arrived and the numbers seen beyond it, ignores duplicates (at-least-once
delivery resends), and says what is missing. The missing ones are fetched with
`client.subscriptions.messages(subscription_id, after_sequence=gap.after_sequence)`.

A gap shows only once a later number arrives: to notice the last deliveries going missing too,
fetch after `contiguous(subscription_id)` now and then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

SUBSCRIPTION_HEADER = "X-CauseFlow-Subscription"
SEQUENCE_HEADER = "X-CauseFlow-Sequence"


class Gap(NamedTuple):
    """Sequences `after_sequence + 1` through `through` of a subscription did not arrive."""

    subscription_id: str
    after_sequence: int
    through: int


@dataclass
class _Lane:
    contiguous: int = 0  # every sequence up to this one arrived
    beyond: set[int] = field(default_factory=set)  # arrived, above contiguous + 1


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


class GapTracker:
    """Per subscription: the highest contiguous sequence, the numbers missing below the highest
    one seen. `start` gives sequences already handled (a receiver's checkpoint)."""

    def __init__(self, start: Mapping[str, int] | None = None) -> None:
        self._lanes: dict[str, _Lane] = {
            sub: _Lane(contiguous=int(n)) for sub, n in (start or {}).items()
        }

    def observe(self, headers: Mapping[str, str]) -> bool:
        """Note a delivery by its headers; True when its sequence is new. A delivery without
        the headers (a test delivery, a replay) is no match of the subscription: False."""
        sub = _header(headers, SUBSCRIPTION_HEADER)
        raw = _header(headers, SEQUENCE_HEADER)
        if sub is None or raw is None:
            return False
        try:
            sequence = int(raw)
        except ValueError:
            return False
        return self.see(sub, sequence)

    def see(self, subscription_id: str, sequence: int) -> bool:
        """Note `sequence` of `subscription_id` (from a delivery or a fetched message); True
        when it had not been seen."""
        if sequence < 1:
            return False
        lane = self._lanes.setdefault(subscription_id, _Lane())
        if sequence <= lane.contiguous or sequence in lane.beyond:
            return False
        lane.beyond.add(sequence)
        while lane.contiguous + 1 in lane.beyond:
            lane.contiguous += 1
            lane.beyond.discard(lane.contiguous)
        return True

    def contiguous(self, subscription_id: str) -> int:
        """Every sequence up to this one arrived (0: none yet)."""
        lane = self._lanes.get(subscription_id)
        return lane.contiguous if lane is not None else 0

    def highest(self, subscription_id: str) -> int:
        """The highest sequence seen (0: none yet)."""
        lane = self._lanes.get(subscription_id)
        if lane is None:
            return 0
        return max(lane.beyond, default=lane.contiguous)

    def missing(self, subscription_id: str | None = None) -> list[Gap]:
        """The runs of missing sequences below the highest seen, of one subscription or all,
        in order; fetch each with `messages(subscription_id, after_sequence=gap.after_sequence)`
        up to `gap.through`."""
        subs = [subscription_id] if subscription_id is not None else sorted(self._lanes)
        gaps: list[Gap] = []
        for sub in subs:
            lane = self._lanes.get(sub)
            if lane is None:
                continue
            previous = lane.contiguous
            for seen in sorted(lane.beyond):
                if seen > previous + 1:
                    gaps.append(Gap(sub, previous, seen - 1))
                previous = seen
        return gaps

    def missing_numbers(self, subscription_id: str) -> list[int]:
        """Every missing sequence of one subscription below the highest seen."""
        return [
            n
            for gap in self.missing(subscription_id)
            for n in range(gap.after_sequence + 1, gap.through + 1)
        ]

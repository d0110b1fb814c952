"""`GapTracker`, from tables: what a receiver fed these deliveries is missing."""

from __future__ import annotations

import pytest

from causeflow_sdk import Gap, GapTracker

pytestmark = pytest.mark.unit

SUB = "sub_01M86BHTRK6CQ643DZVMXXQKFB"
OTHER = "sub_01M86BHTRK6CQ643DZVMXXQKFC"


def headers(sub: str, sequence: int | str) -> dict[str, str]:
    return {"X-CauseFlow-Subscription": sub, "X-CauseFlow-Sequence": str(sequence)}


@pytest.mark.parametrize(
    ("arrivals", "contiguous", "missing"),
    [
        ([], 0, []),
        ([1, 2, 3], 3, []),
        ([2], 0, [Gap(SUB, 0, 1)]),
        ([1, 3], 1, [Gap(SUB, 1, 2)]),
        ([1, 4, 7], 1, [Gap(SUB, 1, 3), Gap(SUB, 4, 6)]),
        ([3, 1, 2], 3, []),  # out of order, then filled
        ([1, 2, 2, 1, 5, 5], 2, [Gap(SUB, 2, 4)]),  # duplicates (resends) change nothing
        ([5, 4, 3, 1], 1, [Gap(SUB, 1, 2)]),
    ],
)
def test_missing_from_a_table(arrivals: list[int], contiguous: int, missing: list[Gap]) -> None:
    tracker = GapTracker()
    for n in arrivals:
        tracker.observe(headers(SUB, n))
    assert tracker.contiguous(SUB) == contiguous
    assert tracker.missing() == missing
    assert tracker.highest(SUB) == max(arrivals, default=0)


@pytest.mark.parametrize(
    ("given", "new"),
    [
        (headers(SUB, 1), True),
        ({"x-causeflow-subscription": SUB, "x-causeflow-sequence": "2"}, True),  # any case
        ({"X-CauseFlow-Delivery": "msg_1"}, False),  # a test delivery or a replay
        (headers(SUB, "abc"), False),
        (headers(SUB, 0), False),
    ],
)
def test_observe_reads_the_headers(given: dict[str, str], new: bool) -> None:
    assert GapTracker().observe(given) is new


def test_duplicates_report_false_and_subscriptions_are_separate() -> None:
    tracker = GapTracker(start={OTHER: 10})
    assert tracker.see(SUB, 2) is True
    assert tracker.see(SUB, 2) is False
    assert tracker.see(OTHER, 10) is False  # at or below the checkpoint
    assert tracker.see(OTHER, 12) is True
    assert tracker.missing() == [Gap(SUB, 0, 1), Gap(OTHER, 10, 11)]  # by subscription id
    assert tracker.missing(SUB) == [Gap(SUB, 0, 1)]
    assert tracker.missing_numbers(OTHER) == [11]
    tracker.see(OTHER, 11)  # fetched through the pull API
    assert tracker.contiguous(OTHER) == 12 and tracker.missing(OTHER) == []

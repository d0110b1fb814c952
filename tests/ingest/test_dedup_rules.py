"""Re-delivery suppression at its edges and the error an unknown alert status gets."""

from __future__ import annotations

import pytest

from causeflow.ingest.dedup import decide, delivery_is_fresh

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("received", "now", "ttl", "fresh"),
    [
        (1_700_000_000_000, 1_700_000_000_000, 60, True),
        (1_700_000_000_000, 1_700_000_059_999, 60, True),
        (1_700_000_000_000, 1_700_000_060_000, 60, False),
        (1_700_000_000_000, 1_699_999_999_000, 60, True),  # a clock step back: still fresh
    ],
)
def test_a_delivery_id_suppresses_repeats_for_ttl_seconds_after_it_was_received(
    received: int, now: int, ttl: int, fresh: bool
) -> None:
    assert delivery_is_fresh(received, now, ttl) is fresh


def test_an_unknown_status_is_named_in_the_error() -> None:
    with pytest.raises(ValueError) as info:
        decide("exploded", True)
    assert str(info.value) == "unknown alert status 'exploded'"

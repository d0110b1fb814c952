"""Endpoint statistics from tables of counts: nearest-rank percentiles, one window's figures,
the hourly series and when a failing subscription gets disabled. Pure; no database."""

from __future__ import annotations

import pytest

from causeflow.clock import ms_to_rfc3339
from causeflow.webhook.stats import (
    LastError,
    Tally,
    auto_disable_after,
    percentile,
    series_view,
    window_view,
)

pytestmark = pytest.mark.unit

PERCENTILES = [
    ([], 50, None),
    ([(10, 1)], 50, 10),
    ([(10, 1)], 95, 10),
    ([(10, 1), (20, 1)], 50, 10),
    ([(10, 1), (20, 1)], 95, 20),
    ([(30, 1), (10, 1), (20, 1)], 50, 20),  # order of the pairs does not matter
    ([(1, 95), (1000, 5)], 95, 1),
    ([(1, 94), (1000, 6)], 95, 1000),
    ([(5, 0), (7, 2)], 50, 7),  # empty counts are ignored
    ([(i, 1) for i in range(1, 101)], 95, 95),
    ([(i, 1) for i in range(1, 101)], 100, 100),
]


@pytest.mark.parametrize(("pairs", "q", "expected"), PERCENTILES)
def test_nearest_rank_percentile(pairs: list[tuple[int, int]], q: float, expected: int | None):
    assert percentile(pairs, q) == expected


def test_window_view_counts_rates_and_the_errors_inside_it() -> None:
    tally = Tally([(True, 10, 3), (False, 200, 1), (False, None, 1)])
    inside = LastError(at_ms=5_000, status_code=503, error="http_503")
    view = window_view(tally, inside, since_ms=1_000)
    assert view["attempts"] == 5 and view["succeeded"] == 3 and view["failed"] == 2
    assert view["successRate"] == 0.6
    assert view["latencyMs"] == {"p50": 10, "p95": 200}  # the attempt without latency left out
    assert view["lastError"] == {"at": ms_to_rfc3339(5_000), "statusCode": 503, "error": "http_503"}
    assert window_view(tally, inside, since_ms=5_001)["lastError"] is None
    empty = window_view(Tally([]), None, since_ms=0)
    assert empty["successRate"] is None and empty["latencyMs"] == {"p50": None, "p95": None}


def test_series_has_every_bucket_and_ignores_strays() -> None:
    bars = series_view(
        [(0, True, 2), (0, False, 1), (2, True, 5), (3, True, 9), (-1, True, 4)],
        start_ms=0,
        bucket_ms=1000,
        buckets=3,
    )
    assert [(b["succeeded"], b["failed"]) for b in bars] == [(2, 1), (0, 0), (5, 0)]
    assert [b["start"] for b in bars] == [ms_to_rfc3339(i * 1000) for i in range(3)]


@pytest.mark.parametrize(
    ("enabled", "first_failure_at", "expected"),
    [(True, None, None), (False, 1000, None), (True, 1000, 1000 + 500)],
)
def test_auto_disable_after(enabled: bool, first_failure_at: int | None, expected: int | None):
    assert auto_disable_after(enabled, first_failure_at, 500) == expected

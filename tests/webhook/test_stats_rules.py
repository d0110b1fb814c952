"""Endpoint statistics from tables of counts: nearest-rank percentiles, one window's figures,
the hourly series and when a failing subscription gets disabled. Pure; no database."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from causeflow.clock import ms_to_rfc3339
from causeflow.webhook.stats import (
    LastError,
    Tally,
    auto_disable_after,
    percentile,
    series_view,
    stats_view,
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
    ([(i, 1) for i in range(1, 203)], 50, 101),  # rank 101 = ceil(50 / 100 * 202)
    ([(i, 1) for i in range(1, 201)], 50.5, 101),
]
# equivalent: causeflow.webhook.stats.x_percentile__mutmut_3 -- `n >= 0` lets pairs of count 0
# in, which add nothing to `seen`: the loop returns at the pair that reached the rank either way.
# equivalent: causeflow.webhook.stats.x_percentile__mutmut_24, 25, 26 -- the last line is
# unreachable: rank <= total, so the loop returns by the last pair at the latest.


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


def test_window_view_rounds_to_four_places_and_takes_p50_and_p95() -> None:
    third = window_view(Tally([(True, 1, 1), (False, 2, 2)]), None, since_ms=0)
    assert third["successRate"] == 0.3333
    hundred = Tally([(i % 2 == 0, i, 1) for i in range(1, 101)])
    assert window_view(hundred, None, since_ms=0)["latencyMs"] == {"p50": 50, "p95": 95}


def test_an_error_at_the_window_start_is_inside_it() -> None:
    error = LastError(at_ms=1_000, status_code=None, error="timeout")
    at_start = window_view(Tally([]), error, since_ms=1_000)["lastError"]
    assert at_start == {"at": ms_to_rfc3339(1_000), "statusCode": None, "error": "timeout"}
    assert window_view(Tally([]), error, since_ms=1_001)["lastError"] is None


def test_series_adds_up_rows_of_the_same_bucket() -> None:
    rows = [(1, True, 2), (1, True, 3), (1, False, 4), (1, False, 1), (2, False, 1)]
    bars = series_view(rows, start_ms=0, bucket_ms=10, buckets=2)
    assert [(b["succeeded"], b["failed"]) for b in bars] == [(0, 0), (5, 5)]


NOW = 1_700_000_000_000
HOUR = 3_600_000  # literal, not the module's constant: the view must use exactly an hour
DAY = 86_400_000


def _view(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "subscription": SimpleNamespace(id="whs_1", enabled=1, first_failure_at=NOW - 5_000),
        "now_ms": NOW,
        "hour": Tally([(True, 10, 2), (False, 30, 1)]),
        "day": Tally([(True, 10, 5), (False, None, 3)]),
        "last_error": None,
        "consecutive_failures": 4,
        "pending": 6,
        "oldest_pending_ms": NOW - 1_234,
        "series": [(0, True, 1), (23, False, 2), (24, True, 9)],
        "disable_after_ms": 60_000,
    }
    return stats_view(**{**args, **overrides})


def test_stats_view_is_the_whole_answer() -> None:
    bars = [
        {"start": ms_to_rfc3339(NOW - DAY + i * HOUR), "succeeded": 0, "failed": 0}
        for i in range(24)
    ]
    bars[0]["succeeded"], bars[23]["failed"] = 1, 2
    view = _view()
    assert type(view["series"]["bucketSeconds"]) is int  # 3600, not 3600.0 on the wire
    assert view == {
        "subscriptionId": "whs_1",
        "generatedAt": ms_to_rfc3339(NOW),
        "lastHour": {
            "attempts": 3,
            "succeeded": 2,
            "failed": 1,
            "successRate": 0.6667,
            "latencyMs": {"p50": 10, "p95": 30},
            "lastError": None,
        },
        "lastDay": {
            "attempts": 8,
            "succeeded": 5,
            "failed": 3,
            "successRate": 0.625,
            "latencyMs": {"p50": 10, "p95": 10},
            "lastError": None,
        },
        "backlog": {"pending": 6, "oldestAgeSeconds": 1.234},
        "consecutiveFailures": 4,
        "enabled": True,
        "failingSince": ms_to_rfc3339(NOW - 5_000),
        "autoDisableAfter": ms_to_rfc3339(NOW - 5_000 + 60_000),
        "series": {"bucketSeconds": 3600, "buckets": bars},
    }


@pytest.mark.parametrize(
    ("at_ms", "in_hour", "in_day"),
    [
        (NOW - HOUR, True, True),
        (NOW - HOUR - 1, False, True),
        (NOW - DAY, False, True),
        (NOW - DAY - 1, False, False),
    ],
)
def test_the_last_error_shows_in_the_windows_it_falls_in(
    at_ms: int, in_hour: bool, in_day: bool
) -> None:
    view = _view(last_error=LastError(at_ms=at_ms, status_code=500, error="http_500"))
    shown = {"at": ms_to_rfc3339(at_ms), "statusCode": 500, "error": "http_500"}
    assert view["lastHour"]["lastError"] == (shown if in_hour else None)
    assert view["lastDay"]["lastError"] == (shown if in_day else None)


def test_backlog_age_and_a_subscription_that_is_not_failing() -> None:
    # equivalent: causeflow.webhook.stats.x_stats_view__mutmut_27 -- round(ms / 1000, 4) equals
    # round(ms / 1000, 3): whole milliseconds have three decimal places as seconds.
    assert _view(oldest_pending_ms=None)["backlog"] == {"pending": 6, "oldestAgeSeconds": None}
    assert _view(oldest_pending_ms=NOW + 5)["backlog"]["oldestAgeSeconds"] == 0
    assert _view(oldest_pending_ms=NOW - 1)["backlog"]["oldestAgeSeconds"] == 0.001
    quiet = _view(subscription=SimpleNamespace(id="whs_2", enabled=True, first_failure_at=None))
    assert quiet["failingSince"] is None and quiet["autoDisableAfter"] is None
    off = _view(subscription=SimpleNamespace(id="whs_3", enabled=0, first_failure_at=NOW))
    assert off["enabled"] is False and off["autoDisableAfter"] is None
    assert off["failingSince"] == ms_to_rfc3339(NOW)

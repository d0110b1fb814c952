"""An endpoint's health as numbers: attempts, success rate, latency percentiles, the backlog and
how close it is to being disabled. Pure: the repository counts, this module turns counts into
the view, so the arithmetic is tested from tables.

An attempt succeeds on a 2xx answer; anything else (another status, a timeout, a refused or
blocked connection) is a failed attempt. Percentiles use the nearest-rank method over the exact
millisecond latencies of the window's attempts that got an answer or timed out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from causeflow.clock import ms_to_rfc3339

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SERIES_BUCKETS = 24  # the chart: the last day, an hour a bar


@dataclass(frozen=True, slots=True)
class Tally:
    """Attempts of one window grouped by outcome and latency: (ok, latency_ms, count) rows."""

    rows: Sequence[tuple[bool, int | None, int]]

    @property
    def succeeded(self) -> int:
        return sum(n for ok, _, n in self.rows if ok)

    @property
    def failed(self) -> int:
        return sum(n for ok, _, n in self.rows if not ok)


@dataclass(frozen=True, slots=True)
class LastError:
    at_ms: int
    status_code: int | None
    error: str | None


def percentile(latencies: Iterable[tuple[int, int]], q: float) -> int | None:
    """The nearest-rank `q` percentile (0 < q <= 100) of (latency_ms, count) pairs."""
    pairs = sorted((lat, n) for lat, n in latencies if n > 0)
    total = sum(n for _, n in pairs)
    if total == 0:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for latency, count in pairs:
        seen += count
        if seen >= rank:
            return latency
    return pairs[-1][0]  # unreachable: rank <= total


def window_view(tally: Tally, last_error: LastError | None, since_ms: int) -> dict[str, Any]:
    """One window's figures; the last error only if it happened in the window."""
    succeeded, failed = tally.succeeded, tally.failed
    total = succeeded + failed
    timed = [(lat, n) for _, lat, n in tally.rows if lat is not None]
    error = None
    if last_error is not None and last_error.at_ms >= since_ms:
        error = {
            "at": ms_to_rfc3339(last_error.at_ms),
            "statusCode": last_error.status_code,
            "error": last_error.error,
        }
    return {
        "attempts": total,
        "succeeded": succeeded,
        "failed": failed,
        "successRate": round(succeeded / total, 4) if total else None,
        "latencyMs": {"p50": percentile(timed, 50), "p95": percentile(timed, 95)},
        "lastError": error,
    }


def series_view(
    counts: Iterable[tuple[int, bool, int]], start_ms: int, bucket_ms: int, buckets: int
) -> list[dict[str, Any]]:
    """Bars of (bucket index, ok, count) rows, every bucket present, oldest first."""
    bars = [[0, 0] for _ in range(buckets)]
    for index, ok, count in counts:
        if 0 <= index < buckets:
            bars[index][0 if ok else 1] += count
    return [
        {"start": ms_to_rfc3339(start_ms + i * bucket_ms), "succeeded": s, "failed": f}
        for i, (s, f) in enumerate(bars)
    ]


def auto_disable_after(
    enabled: bool, first_failure_at: int | None, disable_after_ms: int
) -> int | None:
    """From when the next delivery that uses up its retries disables the subscription: the
    failure window opened at `first_failure_at` and must be `disable_after_ms` old. None while
    no window is open or the subscription is already disabled."""
    if not enabled or first_failure_at is None:
        return None
    return first_failure_at + disable_after_ms


def stats_view(
    *,
    subscription: Any,
    now_ms: int,
    hour: Tally,
    day: Tally,
    last_error: LastError | None,
    consecutive_failures: int,
    pending: int,
    oldest_pending_ms: int | None,
    series: Iterable[tuple[int, bool, int]],
    disable_after_ms: int,
) -> dict[str, Any]:
    """The whole answer of `GET /v1/webhook-subscriptions/{id}/stats`."""
    series_start = now_ms - SERIES_BUCKETS * HOUR_MS
    disable_at = auto_disable_after(
        bool(subscription.enabled), subscription.first_failure_at, disable_after_ms
    )
    oldest_age = None
    if oldest_pending_ms is not None:
        oldest_age = round(max(0, now_ms - oldest_pending_ms) / 1000, 3)
    return {
        "subscriptionId": subscription.id,
        "generatedAt": ms_to_rfc3339(now_ms),
        "lastHour": window_view(hour, last_error, now_ms - HOUR_MS),
        "lastDay": window_view(day, last_error, now_ms - DAY_MS),
        "backlog": {"pending": pending, "oldestAgeSeconds": oldest_age},
        "consecutiveFailures": consecutive_failures,
        "enabled": bool(subscription.enabled),
        "failingSince": (
            ms_to_rfc3339(subscription.first_failure_at) if subscription.first_failure_at else None
        ),
        "autoDisableAfter": ms_to_rfc3339(disable_at) if disable_at is not None else None,
        "series": {
            "bucketSeconds": HOUR_MS // 1000,
            "buckets": series_view(series, series_start, HOUR_MS, SERIES_BUCKETS),
        },
    }

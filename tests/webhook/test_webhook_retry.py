"""Retry policy from tables: schedules, jitter bounds, exhaustion, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from causeflow.settings import Settings
from causeflow.webhook.retry import (
    jitter,
    max_attempts,
    next_delay,
    parse_retry_after,
    parse_schedule,
)

pytestmark = pytest.mark.unit

SEEDS = range(200)
# what the service runs with unless CAUSEFLOW_WEBHOOK_RETRY_SCHEDULE says otherwise
DEFAULT_SCHEDULE = parse_schedule(Settings.model_fields["webhook_retry_schedule"].default)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5s,5m,30m,2h,5h,10h,10h", (5, 300, 1800, 7200, 18000, 36000, 36000)),
        ("1s,1s,2s", (1, 1, 2)),
        ("1, 2 ,3", (1, 2, 3)),
        ("500ms,1.5s", (0.5, 1.5)),
        ("0", (0,)),
        ("2H, 1D", (7200, 86400)),
        ("90", (90,)),
        ("250ms", (0.25,)),
    ],
)
def test_parse_schedule(text: str, expected: tuple[float, ...]) -> None:
    assert parse_schedule(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("5s,,5m", "step 2"),
        ("5x", "step 1"),
        ("-5s", "step 1"),
        ("5s,soon", "step 2"),
        ("1e3", "step 1"),
        ("5 s", "step 1"),
    ],
)
def test_parse_schedule_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_schedule(text)


def test_default_schedule_is_the_documented_one() -> None:
    assert DEFAULT_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert max_attempts(DEFAULT_SCHEDULE) == 8


@pytest.mark.parametrize("seconds", [1.0, 5.0, 300.0, 36000.0])
def test_jitter_stays_within_twenty_percent_and_spreads(seconds: float) -> None:
    rng = random.Random(1234)
    draws = [jitter(seconds, rng) for _ in range(20000)]
    assert all(0.8 * seconds <= d <= 1.2 * seconds for d in draws)
    # It really moves: both ends of the band are reached and the mean sits in the middle.
    assert min(draws) < 0.81 * seconds
    assert max(draws) > 1.19 * seconds
    assert abs(sum(draws) / len(draws) - seconds) < 0.01 * seconds


def test_jitter_is_reproducible_from_the_seed() -> None:
    first = [jitter(10, random.Random(7)) for _ in range(3)]
    assert first == [jitter(10, random.Random(7)) for _ in range(3)]


@pytest.mark.parametrize("schedule", [(1.0, 1.0, 2.0), DEFAULT_SCHEDULE, (5.0,)])
def test_exhaustion_after_len_plus_one_attempts(schedule: tuple[float, ...]) -> None:
    rng = random.Random(99)
    delays = []
    attempts = 1
    while (delay := next_delay(schedule, attempts, rng)) is not None:
        delays.append(delay)
        attempts += 1
    assert attempts == len(schedule) + 1 == max_attempts(schedule)
    assert len(delays) == len(schedule)
    for step, delay in zip(schedule, delays, strict=True):
        assert 0.8 * step <= delay <= 1.2 * step
    assert next_delay(schedule, attempts + 5, rng, retry_after=10) is None


def test_attempts_are_counted_from_one() -> None:
    with pytest.raises(ValueError):
        next_delay((1, 2), 0, random.Random(0))


@pytest.mark.parametrize(
    ("value", "now", "expected"),
    [
        ("120", 0.0, 120.0),
        (" 0 ", 0.0, 0.0),
        ("1.5", 0.0, 1.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1445412400.0, 80.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 1445412400.0, 80.0),  # RFC 850
        ("Wed Oct 21 07:28:00 2015", 1445412400.0, 80.0),  # asctime
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1445412500.0, 0.0),  # already past
        (None, 0.0, None),
        ("", 0.0, None),
        ("soon", 0.0, None),
        ("-5", 0.0, None),
        ("12abc", 0.0, None),
        ("9" * 400, 0.0, None),
        ("Wed, 32 Oct 2015 07:28:00 GMT", 0.0, None),
    ],
)
def test_parse_retry_after(value: str | None, now: float, expected: float | None) -> None:
    assert parse_retry_after(value, now) == expected


def test_parse_retry_after_round_trips_a_formatted_date() -> None:
    now = 1_800_000_000.0
    header = format_datetime(datetime.fromtimestamp(now + 3600, tz=UTC), usegmt=True)
    assert parse_retry_after(header, now) == 3600.0


SCHEDULE = (5.0, 300.0, 1800.0)


@pytest.mark.parametrize(
    ("failed_attempts", "retry_after", "low", "high"),
    [
        # No Retry-After: step k with ±20 %.
        (1, None, 4.0, 6.0),
        (2, None, 240.0, 360.0),
        (3, None, 1440.0, 2160.0),
        # Retry-After below step k: the step wins (jittered as usual).
        (1, 1.0, 4.0, 6.0),
        (2, 0.0, 240.0, 360.0),
        # Retry-After between: the jittered step never falls below it.
        (1, 5.5, 5.5, 6.0),
        # Retry-After above the jitter band but under step k+1: exactly Retry-After.
        (1, 60.0, 60.0, 60.0),
        (2, 1000.0, 1000.0, 1000.0),
        # Retry-After beyond step k+1: capped at step k+1.
        (1, 100000.0, 300.0, 300.0),
        (2, 100000.0, 1800.0, 1800.0),
        # Last step: step k+1 is the last step itself.
        (3, 100000.0, 1800.0, 2160.0),
        (3, 1000.0, 1440.0, 2160.0),
    ],
)
def test_retry_after_rule(
    failed_attempts: int, retry_after: float | None, low: float, high: float
) -> None:
    for seed in SEEDS:
        delay = next_delay(SCHEDULE, failed_attempts, random.Random(seed), retry_after)
        assert delay is not None
        assert low <= delay <= high


def test_retry_after_does_not_extend_the_schedule() -> None:
    assert next_delay(SCHEDULE, len(SCHEDULE) + 1, random.Random(0), retry_after=5.0) is None

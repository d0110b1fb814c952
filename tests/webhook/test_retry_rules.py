"""Retry rules at their edges: jitter direction and bounds, Retry-After floors, HTTP dates under
any local time zone, and the messages a bad schedule setting gets."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from causeflow.webhook.retry import (
    JITTER_FRACTION,
    jitter,
    next_delay,
    parse_retry_after,
    parse_schedule,
)

pytestmark = pytest.mark.unit

# equivalent: causeflow.webhook.retry.x_next_delay__mutmut_22 -- when `index + 2 < len` fails
#   but `index + 1 < len` holds, index + 1 is the last step, so schedule[index + 1] and
#   schedule[-1] are the same element.


class Draw(random.Random):
    """A random source whose every uniform draw lands at one end of its range."""

    def __init__(self, end: str) -> None:
        super().__init__(0)
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return b if self.end == "top" else a


def test_the_top_of_the_jitter_range_lengthens_the_delay_and_the_bottom_shortens_it() -> None:
    assert JITTER_FRACTION == 0.2
    assert jitter(100.0, Draw("top")) == pytest.approx(120.0)
    assert jitter(100.0, Draw("bottom")) == pytest.approx(80.0)


def test_attempts_are_counted_from_one_says_the_error() -> None:
    with pytest.raises(ValueError) as info:
        next_delay((5.0, 300.0), 0, random.Random(1))
    assert str(info.value) == "failed_attempts counts attempts already made and starts at 1"


# Steps of 10 ms then 10 s, the jitter at its top: the step alone waits 12 ms.
@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(0.5, 0.5), (0.0, 0.012), (-5.0, 0.012), (3.0, 3.0), (50.0, 10.0)],
)
def test_retry_after_is_honoured_from_zero_up_to_the_next_step(
    retry_after: float, expected: float
) -> None:
    assert next_delay((0.01, 10.0), 1, Draw("top"), retry_after) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "retry schedule is empty; expected e.g. '5s,5m,30m,2h,5h,10h,10h'"),
        (
            "5s, soon",
            "retry schedule step 2 ('soon') is not a duration; use a number with an optional"
            " unit ms, s, m, h or d, e.g. '30s' or '2h'",
        ),
    ],
)
def test_a_bad_schedule_setting_says_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_schedule(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1ms", 0.001), ("1s", 1.0), ("1", 1.0), ("1m", 60.0), ("1h", 3600.0), ("1d", 86400.0)],
)
def test_each_unit_is_its_number_of_seconds(text: str, seconds: float) -> None:
    assert parse_schedule(text) == (pytest.approx(seconds),)


@pytest.fixture(params=["America/New_York", "Asia/Kolkata", "Pacific/Kiritimati", "UTC"])
def local_zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """The process's local time zone set to the parameter (an HTTP date must not care)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    try:
        yield str(request.param)
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
        "Sun Nov  6 08:49:37 1994",  # asctime: no zone written, still GMT
    ],
)
def test_an_http_date_means_the_same_instant_in_every_local_zone(
    local_zone: str, value: str
) -> None:
    instant = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC).timestamp()
    assert time.strftime("%Z") != "" and os.environ["TZ"] == local_zone
    assert parse_retry_after(value, instant - 90) == pytest.approx(90.0)


def test_a_formatted_date_round_trips_in_every_local_zone(local_zone: str) -> None:
    now = 1_700_000_000.0
    value = format_datetime(datetime.fromtimestamp(now + 120, UTC), usegmt=True)
    assert parse_retry_after(value, now) == pytest.approx(120.0)

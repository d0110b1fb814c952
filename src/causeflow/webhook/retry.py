"""Retry policy of webhook deliveries (pure: randomness and `now` come in as arguments).

A schedule is the tuple of delays between attempts; a delivery makes `len(schedule) + 1`
attempts in all, each delay counted from the failed attempt before it, with ±20 % jitter so
receivers recovering from an outage are not hit by every retry at the same instant.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime

JITTER_FRACTION = 0.2

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_STEP_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_DELTA_RE = re.compile(r"^\d+(?:\.\d+)?$")


def parse_schedule(text: str) -> tuple[float, ...]:
    """Parse `"5s,5m,30m,2h,5h,10h,10h"` into seconds.

    Steps are comma-separated; each is a non-negative number with an optional unit (`ms`, `s`,
    `m`, `h`, `d`; none means seconds). Raises ValueError naming the offending step.
    """
    if not text.strip():
        raise ValueError("retry schedule is empty; expected e.g. '5s,5m,30m,2h,5h,10h,10h'")
    steps: list[float] = []
    for position, raw in enumerate(text.split(","), start=1):
        token = raw.strip().lower()
        match = _STEP_RE.match(token)
        if match is None:
            raise ValueError(
                f"retry schedule step {position} ({raw.strip()!r}) is not a duration; "
                "use a number with an optional unit ms, s, m, h or d, e.g. '30s' or '2h'"
            )
        number, unit = match.groups()
        steps.append(float(number) * _UNIT_SECONDS[unit or "s"])
    return tuple(steps)


def max_attempts(schedule: Sequence[float]) -> int:
    """How many attempts a delivery gets in all: the first plus one per step."""
    return len(schedule) + 1


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP-date).

    `now` is epoch seconds, used for the date form; a date in the past gives 0. Absent,
    negative or unparseable values give None (the header is then ignored).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_RE.match(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # HTTP-dates are always GMT; the asctime form carries no zone and still means GMT.
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def jitter(seconds: float, rng: random.Random) -> float:
    """`seconds` moved uniformly within ±`JITTER_FRACTION` of itself."""
    return seconds * (1.0 + rng.uniform(-JITTER_FRACTION, JITTER_FRACTION))


def next_delay(
    schedule: Sequence[float],
    failed_attempts: int,
    rng: random.Random,
    retry_after: float | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, or None when the delivery is exhausted.

    `failed_attempts` counts the attempts made so far (1 after the first failure), so step k =
    `schedule[failed_attempts - 1]`. A 429/503 that sent `Retry-After` waits
    `max(step k, min(retry_after, step k+1))` (step k+1 is the last step when there is none):
    the receiver may slow us down, but never beyond the next step. Jitter applies to the step
    part only, and the result is never below the `retry_after` part, so a receiver asking for
    a pause gets at least what it asked for (up to that cap).
    """
    if failed_attempts < 1:
        raise ValueError("failed_attempts counts attempts already made and starts at 1")
    index = failed_attempts - 1
    if index >= len(schedule):
        return None
    delay = jitter(schedule[index], rng)
    if retry_after is not None:
        cap = schedule[index + 1] if index + 1 < len(schedule) else schedule[-1]
        delay = max(delay, min(max(retry_after, 0.0), cap))
    return delay

"""Time as a dependency: the service asks its `Clock` for now, so tests can move time.

Times are kept as integer epoch milliseconds in storage and rendered RFC 3339 with
milliseconds (`2026-11-27T08:42:53.123Z`) on the wire.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime


class Clock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def now(self) -> float:
        return time.time()


def ms_to_rfc3339(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return f"{_second_text(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=1024)
def _second_text(seconds: int) -> str:
    """The text of a whole second: formatted once, for the many times written within it."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_rfc3339(text: str) -> int:
    """RFC 3339 / ISO 8601 to epoch milliseconds; naive times are taken as UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)

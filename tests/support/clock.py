"""A clock the tests move by hand: the service reads time only through its `Clock`
(`causeflow.clock`), so a test hands it this one and time moves when the test says."""

from __future__ import annotations

import time

from causeflow.clock import Clock


class FrozenClock(Clock):
    """Stands still until `advance` moves it."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._ms = int(time.time() * 1000) if start_ms is None else start_ms

    def now_ms(self) -> int:
        return self._ms

    def now(self) -> float:
        return self._ms / 1000

    def advance(self, seconds: float) -> None:
        self._ms += int(seconds * 1000)

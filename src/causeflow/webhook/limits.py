"""Admission limits of the delivery engine (pure: `now` comes in as an argument, no I/O).

`HostGate` caps the attempts in flight per destination origin; `RateLimits` keeps one token
bucket per subscription for its `rateLimitPerSecond`; `SaturationBackoff` says how far to push
back deliveries whose host is full, doubling while it stays full. The worker asks them and
then starts, holds or hands back each delivery itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=10_000)  # asked for every delivery; subscriptions' URLs repeat
def origin_of(url: str) -> str:
    """`scheme://host:port`, lowercased: the unit of the per-host in-flight cap.

    The port is part of it: two servers on one machine are two endpoints, and a hanging one
    must not use up the other's slots.
    """
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
        host = (parts.hostname or "").lower()
    except ValueError:
        return url
    return f"{scheme}://{host}:{port}"


class HostGate:
    """At most `cap` attempts in flight per origin."""

    def __init__(self, cap: int) -> None:
        self.cap = max(1, cap)
        self._inflight: dict[str, int] = {}

    def try_enter(self, origin: str) -> bool:
        count = self._inflight.get(origin, 0)
        if count >= self.cap:
            return False
        self._inflight[origin] = count + 1
        return True

    def leave(self, origin: str) -> None:
        count = self._inflight.get(origin, 0) - 1
        if count <= 0:
            # Dropped when idle so the map only holds hosts with traffic right now.
            self._inflight.pop(origin, None)
        else:
            self._inflight[origin] = count

    def inflight(self, origin: str) -> int:
        return self._inflight.get(origin, 0)

    def full(self, origin: str) -> bool:
        return self._inflight.get(origin, 0) >= self.cap


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens a second, up to `burst` saved; a reservation may run into debt."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def reserve(self, now: float) -> float:
        """Take one token; return how many seconds from `now` until it may be used (0: now)."""
        self._refill(now)
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def refund(self) -> None:
        """Give back a reservation that will not be used."""
        self.tokens = min(self.burst, self.tokens + 1.0)


class RateLimits:
    """One bucket per subscription; a subscription with no rate (None or <= 0) is unlimited."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def reserve(self, key: str, rate: float | None, now: float) -> float:
        """Seconds until this subscription may start one more attempt (0: at once).

        The token is taken either way; call `refund` if the attempt will not happen then.
        """
        if rate is None or rate <= 0:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate:
            # A new or changed rate starts with one second's worth of burst.
            bucket = TokenBucket(
                rate=float(rate), burst=max(1.0, float(rate)), tokens=0, updated=now
            )
            bucket.tokens = bucket.burst
            self._buckets[key] = bucket
        return bucket.reserve(now)

    def refund(self, key: str) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.refund()

    def prune(self, now: float) -> None:
        """Forget buckets that have refilled completely (they behave like new ones)."""
        for key, bucket in list(self._buckets.items()):
            bucket._refill(now)
            if bucket.tokens >= bucket.burst:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


class SaturationBackoff:
    """How long to push back the deliveries of a host that has no free slot.

    The first overflow waits `base` seconds; each further overflow while the host stays full
    doubles it, up to `cap`; an attempt that finds the host with room resets it. So a dead
    endpoint's backlog is looked at less and less often instead of being re-claimed in a loop,
    while a host that is merely busy for a moment is retried soon.
    """

    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        self.base = base
        self.cap = cap
        self._delay: dict[str, tuple[float, float]] = {}  # origin -> (delay, decided_at)

    def delay(self, origin: str, now: float) -> float:
        if len(self._delay) > 10_000:
            self._delay.clear()  # hosts that were full once and never since
        current = self._delay.get(origin)
        if current is None:
            delay = self.base
        elif now - current[1] < current[0] / 2:
            # Several overflows in one burst (one claim batch) share the same delay.
            return current[0]
        else:
            delay = min(self.cap, current[0] * 2)
        self._delay[origin] = (delay, now)
        return delay

    def reset(self, origin: str) -> None:
        self._delay.pop(origin, None)

    def __len__(self) -> int:
        return len(self._delay)


class QueueBudget:
    """May one more delivery wait locally for a slot of its host? (recent durations, EWMA)

    A delivery waiting here holds its lease, so the wait must stay well inside it: with `cap`
    in flight, the n-th waiting delivery starts after about `n // cap + 1` attempts' time. A
    host with no history gets one round (it may be a dead one whose attempts run into the
    timeout); a fast one may queue a whole claim batch instead of handing most of it back.
    """

    def __init__(self, budget_seconds: float, weight: float = 0.2, max_hosts: int = 10_000) -> None:
        self.budget = budget_seconds
        self.weight = weight
        self.max_hosts = max_hosts
        self._ewma: dict[str, float] = {}

    def observe(self, origin: str, seconds: float) -> None:
        previous = self._ewma.get(origin)
        if previous is None:
            if len(self._ewma) >= self.max_hosts:
                self._ewma.clear()  # forget old hosts wholesale; they start over at one round
            self._ewma[origin] = seconds
        else:
            self._ewma[origin] = previous + self.weight * (seconds - previous)

    def estimate(self, origin: str) -> float | None:
        return self._ewma.get(origin)

    def may_queue(self, origin: str, queued: int, cap: int) -> bool:
        estimate = self._ewma.get(origin)
        if estimate is None:
            return queued < cap
        rounds = queued // max(1, cap) + 1
        return rounds * estimate <= self.budget

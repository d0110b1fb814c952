"""Admission limits of the delivery engine (pure: `now` comes in as an argument, no I/O).

`HostGate` caps the attempts in flight per destination origin in one process; `SlotBook` keeps
track of the per-host slots a process holds when the cap is shared by several (the slots are
rows in the database, `webhook/cluster.py`); `RateSlots` spaces each subscription's starts
1/`rateLimitPerSecond` apart (`grant` is the rule, shared with the database's version);
`SaturationBackoff` says how far to push back deliveries whose host is full, doubling while it
stays full. The worker asks them and then starts, holds or hands back each delivery itself.
"""

from __future__ import annotations

import functools
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


# A delivery may start at most this long after its rate slot (or one slot interval, if that is
# longer) before it must take a new one: timers fire late and hosts may be busy, and a start
# later than that could fall into the next slot's second. See `rate_tolerance`.
RATE_TOLERANCE_SECONDS = 0.05


def rate_tolerance(rate: float) -> float:
    """How late after its slot a delivery of a subscription limited to `rate`/s may start.

    Slots are at least 1/rate apart, so the starts in any one-second window come from slots
    in an interval of 1 s + this tolerance: at most `rate` + 1 of them up to 20/s (the
    tolerance is one interval), at most `rate` * 1.05 rounded up above.
    """
    return max(1.0 / rate, RATE_TOLERANCE_SECONDS)


def grant(
    next_free: float, now: float, wanted: int, interval: float, horizon_end: float
) -> tuple[float, int]:
    """Reserve up to `wanted` start slots, `interval` apart, none later than `horizon_end`.

    Returns the first slot and how many were granted (0: the schedule is taken beyond the
    horizon; `first` is then when the next free slot would be). The same rule runs in the
    database for the cluster-wide schedule (`webhook/cluster.py`).
    """
    first = max(next_free, now)
    if first > horizon_end:
        return first, 0
    return first, min(wanted, int((horizon_end - first) // interval) + 1)


class RateSlots:
    """Each subscription's deliveries start at least 1/rate apart (one process's schedule).

    A reservation takes the subscription's next free slot; a subscription with no rate (None
    or <= 0) is unlimited. With several processes the schedule lives in the database instead
    (`webhook/cluster.py`), with the same rule.
    """

    def __init__(self) -> None:
        self._next: dict[str, float] = {}  # subscription -> its next free slot

    def reserve(self, key: str, rate: float, now: float, horizon: float) -> tuple[float, bool]:
        """The slot of one more start (`now` or later) and whether it is granted.

        A slot further than `horizon` seconds ahead is not taken: the answer is then when the
        next free one would be, and nothing changes.
        """
        interval = 1.0 / rate
        first, count = grant(self._next.get(key, now), now, 1, interval, now + horizon)
        if count:
            self._next[key] = first + interval
        return first, count > 0

    def prune(self, now: float) -> None:
        """Forget subscriptions whose schedule is free again (they behave like new ones)."""
        for key, free in list(self._next.items()):
            if free <= now:
                del self._next[key]

    def __len__(self) -> int:
        return len(self._next)


class SlotBook:
    """The per-host slots this process holds in the database, and what each is doing (pure).

    With several processes the per-host cap is a set of `cap` numbered slot rows per origin,
    leased like deliveries. A held slot is busy (a lane is sending with it) or idle (kept a
    moment in case more work comes, so reusing it costs no round trip). Each held slot has a
    deadline: the loop time its lease in the database runs out, as of its acquisition or last
    renewal. A slot is used for an attempt only if its lease outlasts that attempt; one whose
    lease got too short is forgotten and listed in `lapsed`, to be released (so that renewing
    this process's leases never keeps a slot it no longer uses).
    """

    def __init__(self, cap: int) -> None:
        self.cap = max(1, cap)
        self._idle: dict[str, dict[int, float]] = {}  # origin -> slot -> idle since
        self._busy: dict[str, set[int]] = {}
        self._deadline: dict[tuple[str, int], float] = {}
        self.lapsed: list[tuple[str, int]] = []

    def _lapse(self, origin: str, slot: int) -> None:
        self._deadline.pop((origin, slot), None)
        self.lapsed.append((origin, slot))

    def take_lapsed(self) -> list[tuple[str, int]]:
        out, self.lapsed = self.lapsed, []
        return out

    def held(self, origin: str) -> int:
        return len(self._idle.get(origin, ())) + len(self._busy.get(origin, ()))

    def holds(self, origin: str, slot: int) -> bool:
        return (origin, slot) in self._deadline

    def count(self) -> int:
        """Slots held, of every origin."""
        return len(self._deadline)

    def busy(self, origin: str) -> int:
        return len(self._busy.get(origin, ()))

    def idle_count(self) -> int:
        return sum(len(slots) for slots in self._idle.values())

    def take(self, origin: str, need: float) -> int | None:
        """An idle slot of `origin` whose lease lasts until `need`, now busy; None if none.

        Idle slots whose lease is too short are forgotten (the database lets them lapse)."""
        idle = self._idle.get(origin)
        while idle:
            slot, _since = idle.popitem()
            if not idle:
                del self._idle[origin]
            if self._deadline.get((origin, slot), 0.0) >= need:
                self._busy.setdefault(origin, set()).add(slot)
                return slot
            self._lapse(origin, slot)
        return None

    def usable(self, origin: str, slot: int, need: float) -> bool:
        return self._deadline.get((origin, slot), 0.0) >= need

    def give_back(self, origin: str, slot: int, now: float, need: float) -> None:
        """A lane is done with `slot`: idle from `now`, or forgotten if its lease is too short."""
        busy = self._busy.get(origin)
        if busy is not None:
            busy.discard(slot)
            if not busy:
                del self._busy[origin]
        if self._deadline.get((origin, slot), 0.0) >= need:
            self._idle.setdefault(origin, {})[slot] = now
        elif (origin, slot) in self._deadline:
            self._lapse(origin, slot)

    def add(self, origin: str, slots: list[int], deadline: float, now: float) -> None:
        """Slots just acquired: idle, ready for a lane."""
        idle = self._idle.setdefault(origin, {})
        for slot in slots:
            idle[slot] = now
            self._deadline[(origin, slot)] = deadline
        if not idle:
            del self._idle[origin]

    def drop(self, origin: str, slot: int) -> None:
        """Forget a held slot (it is being released)."""
        busy = self._busy.get(origin)
        if busy is not None:
            busy.discard(slot)
            if not busy:
                del self._busy[origin]
        idle = self._idle.get(origin)
        if idle is not None:
            idle.pop(slot, None)
            if not idle:
                del self._idle[origin]
        self._deadline.pop((origin, slot), None)

    def pop_idle(self, origin: str, count: int) -> list[int]:
        """Remove and return up to `count` idle slots of `origin` (to be released now)."""
        idle = self._idle.get(origin)
        out: list[int] = []
        while idle and len(out) < count:
            slot, _since = idle.popitem()
            self._deadline.pop((origin, slot), None)
            out.append(slot)
        if idle is not None and not idle:
            del self._idle[origin]
        return out

    def origins(self) -> set[str]:
        """Origins this process holds slots of."""
        return {origin for origin, _slot in self._deadline}

    def idle_since(self, cutoff: float) -> list[tuple[str, int]]:
        """Remove and return the slots idle since `cutoff` or earlier (to be released)."""
        out: list[tuple[str, int]] = []
        for origin, idle in list(self._idle.items()):
            for slot, since in list(idle.items()):
                if since <= cutoff:
                    del idle[slot]
                    self._deadline.pop((origin, slot), None)
                    out.append((origin, slot))
            if not idle:
                del self._idle[origin]
        return out

    def held_slots(self) -> set[tuple[str, int]]:
        return set(self._deadline)

    def renewed(
        self, asked: set[tuple[str, int]], kept: set[tuple[str, int]], deadline: float
    ) -> None:
        """A renewal of the `asked` slots extended `kept` to `deadline`; the others are lost
        (their lease had lapsed and another process took them): forgotten, and unusable."""
        for key in asked:
            if key not in self._deadline:
                continue  # released meanwhile
            if key in kept:
                self._deadline[key] = max(self._deadline[key], deadline)
            else:
                self._deadline[key] = 0.0  # a busy lane stops; an idle one is dropped on take
        for origin, idle in list(self._idle.items()):
            for slot in [s for s in idle if self._deadline.get((origin, s), 0.0) == 0.0]:
                del idle[slot]
                self._lapse(origin, slot)
            if not idle:
                del self._idle[origin]

    def forget_all(self) -> list[tuple[str, int]]:
        """Every held slot, forgotten (shutdown: they are all released at once)."""
        out = list(self._deadline)
        self.lapsed.clear()
        self._idle.clear()
        self._busy.clear()
        self._deadline.clear()
        return out


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

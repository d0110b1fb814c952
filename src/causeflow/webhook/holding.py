"""What the delivery engine holds: leased deliveries not yet sent or handed back, and the room
that leaves.

Every delivery leased to the engine, claimed from the queue or handed over by this process's
dispatcher, counts from its lease until its outcome or its hand-back; the engine holds at most
`capacity`. The claim loop takes only what fits (and waits, "starved", below `min_claim` free
rather than claiming tiny batches); the dispatcher reserves room before it writes deliveries
leased to the engine and paces itself on `wait_for_room`. Once the engine stops it holds on to
nothing new. What became of the deliveries it let go is counted here too (`COUNT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from causeflow.metrics import DELIVERIES
from causeflow.webhook.queue import Claimed
from causeflow.webhook.subscriptions import Subscription

# Deliveries done, by what became of them: labelled children looked up once (attempts count
# them thousands of times a second).
COUNT = {
    name: DELIVERIES.labels(name)
    for name in (
        "succeeded",
        "retrying",
        "failed",
        "cancelled",
        "subscription_deleted",
        "endpoint_disabled",
        "event_missing",
    )
}


@dataclass(slots=True)
class Job:
    """A claimed delivery ready to send: its subscription and the exact body bytes."""

    claimed: Claimed
    sub: Subscription
    body: bytes
    origin: str
    claimed_at: float  # loop time of the claim: the lease runs from here
    rate_until: float = math.inf  # a rate-limited job must start by then (its slot + tolerance)
    # an ordered head's run: the next deliveries of its lane, leased with it, sent one after
    # another in this job's slot while each one before succeeds
    follow: list[Job] = field(default_factory=list)


class Holding:
    """The count of leased deliveries the engine holds, against its capacity."""

    def __init__(self, capacity: int, *, min_claim: int, wake: Callable[[], None]) -> None:
        self.capacity = capacity
        self.min_claim = min_claim  # below this many free slots a claim waits
        self.held = 0  # leased deliveries not yet sent or handed back (waiting + in flight)
        self.stopping = False
        self._wake = wake  # the claim loop, once there is room again
        self._starved = False
        self._reserved = 0  # room the dispatcher reserved for a batch not yet handed over
        self._room = asyncio.Event()  # set when a batch of fresh deliveries would fit

    def stop(self) -> None:
        """Take nothing new from now on (the dispatcher's wait for room ends at once)."""
        self.stopping = True
        self._room.set()

    def hold(self) -> None:
        """One claimed delivery more."""
        self.held += 1

    def done(self) -> None:
        """One delivery less: sent, settled or handed back."""
        self.held -= 1
        if self.capacity - self.held >= self.capacity // 2:
            self._room.set()
        if self._starved and self.capacity - self.held >= self.min_claim:
            self._starved = False
            self._wake()

    def claimable(self) -> int:
        """How many a claim may take now; 0 below `min_claim` (a delivery done wakes the claim
        loop once enough are)."""
        free = self.capacity - self.held
        if free < self.min_claim:
            self._starved = True
            return 0
        return free

    # --- fresh deliveries from this process's dispatcher ----------------------------------------

    def has_room(self) -> bool:
        return self.stopping or self.capacity - self.held >= self.capacity // 2

    def room(self) -> int:
        return 0 if self.stopping else max(0, self.capacity - self.held)

    async def wait_for_room(self, timeout: float) -> None:
        """The dispatcher's pacing: until a batch fits (or `timeout` seconds pass)."""
        if self.has_room():
            return
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout)

    def reserve(self, wanted: int) -> int:
        """Room for up to `wanted` deliveries the dispatcher is about to write leased to us."""
        if self.stopping:
            return 0
        take = min(wanted, self.room())
        self.held += take
        self._reserved += take
        return take

    def unreserve(self, count: int) -> None:
        """The batch that reserved `count` did not commit: nothing was leased to us."""
        self._reserved -= count
        for _ in range(count):
            self.done()

    def handed_over(self, count: int) -> None:
        """`count` reserved deliveries were committed and handed over (they stay held)."""
        self._reserved -= count

    async def until_handed_over(self, seconds: float) -> None:
        """On stop: a dispatch batch leasing to us may still be committing; wait up to
        `seconds` for it to hand its deliveries over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._reserved and loop.time() < deadline:
            await asyncio.sleep(0.005)

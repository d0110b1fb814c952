"""When the delivery engine looks for due deliveries: wake-ups and timers.

The claim loop sleeps until something says work may be due, or for the slow poll. Four things
say so: the dispatcher of this process after inserting deliveries (`work_added`: claim without
looking first), an event committed anywhere (`on_broker`, on PostgreSQL: another process's
dispatcher makes its deliveries shortly, so look a few times in the next 200 ms), a known due
time (`wake_in`: a retry, a delivery handed back for later), and the engine itself (`wake`).
Due times share one timer, armed for the earliest, in 10 ms buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math

# After a broker wake-up (PostgreSQL), look again at these delays for the deliveries another
# process's dispatcher creates from that event; one chain at a time, however many events.
FOLLOW_UPS = (0.01, 0.05, 0.2)
MAX_WAKE_TIMES = 10_000  # distinct planned wake-ups kept; beyond that the poll covers


class Wakeups:
    """The claim loop's alarm clock: cheap, coalesced calls from any callback."""

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._work_added = False
        self._stopping = False
        self._follow_up: asyncio.TimerHandle | None = None
        self._wake_timer: asyncio.TimerHandle | None = None
        self._wake_due = 0.0
        self._due_heap: list[float] = []
        self._due_set: set[float] = set()

    async def wait(self, timeout: float) -> None:
        """Until a wake-up, or `timeout` seconds (the poll)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    def take_work_added(self) -> bool:
        """Did the dispatcher add deliveries since the last call?"""
        added, self._work_added = self._work_added, False
        return added

    def stop(self) -> None:
        """No more timers; the claim loop wakes once more to see that the engine stops."""
        self._stopping = True
        for timer in (self._wake_timer, self._follow_up):
            if timer is not None:
                timer.cancel()
        self._wake.set()

    def wake(self) -> None:
        """New work may be due: claim soon (cheap, coalesced, callable from any callback)."""
        self._wake.set()

    def work_added(self) -> None:
        """Deliveries were just committed: claim without looking first."""
        self._work_added = True
        self._wake.set()

    def on_broker(self, _tenant_id: str) -> None:
        # An event was committed somewhere: its deliveries follow once some dispatcher has
        # read it (perhaps in another process, which cannot wake us directly), so there is
        # nothing to see yet; look a little later.
        if self._follow_up is None and not self._stopping:
            self._follow_up = asyncio.get_running_loop().call_later(FOLLOW_UPS[0], self._follow, 1)

    def _follow(self, step: int) -> None:
        self.wake()
        if step < len(FOLLOW_UPS) and not self._stopping:
            delay = FOLLOW_UPS[step] - FOLLOW_UPS[step - 1]
            self._follow_up = asyncio.get_running_loop().call_later(delay, self._follow, step + 1)
        else:
            self._follow_up = None

    def wake_in(self, seconds: float) -> None:
        """Wake at a known due time (a retry, a hand-back): one timer, armed for the earliest.
        Once the engine stops, the rows are simply due for whoever claims next."""
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        # 10 ms buckets, rounded up (never before the row is due): thousands of retries a
        # second need only a few timers
        due = math.ceil((loop.time() + max(0.0, seconds)) * 100 + 0.5) / 100
        if due in self._due_set or len(self._due_set) >= MAX_WAKE_TIMES:
            return  # already planned, or so many that the poll will do
        self._due_set.add(due)
        heapq.heappush(self._due_heap, due)
        if self._wake_timer is None or due < self._wake_due:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self._wake_timer is not None:
            self._wake_timer.cancel()
        self._wake_due = due
        self._wake_timer = asyncio.get_running_loop().call_at(due, self._timer_fired)

    def _timer_fired(self) -> None:
        now = asyncio.get_running_loop().time()
        while self._due_heap and self._due_heap[0] <= now:
            self._due_set.discard(heapq.heappop(self._due_heap))
        self._wake_timer = None
        if self._due_heap and not self._stopping:
            self._arm(self._due_heap[0])
        self.wake()

"""Admission and per-host lanes: which claimed delivery starts when, and on which slot.

A delivery of a rate-limited subscription first gets a start slot on its subscription's
schedule (`RateSlots` here, the shared schedule of `ClusterLimits` with several processes);
then it needs one of its host's in-flight slots (`HostGate`, or the cluster's leased slot
rows). A host with a free slot gets a lane: one task that holds the slot and sends one delivery
after another while any wait for that host. A delivery that could not start early enough to
finish inside its lease, or whose host is busy for longer than a lease should wait, is handed
back to the queue instead (`hand_back`).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from causeflow.clock import Clock
from causeflow.webhook.cluster import ClusterLimits
from causeflow.webhook.holding import Holding, Job
from causeflow.webhook.limits import (
    HostGate,
    QueueBudget,
    RateSlots,
    SaturationBackoff,
    rate_tolerance,
)
from causeflow.webhook.recorder import Recorder
from causeflow.webhook.wakeups import Wakeups

# `ClusterLimits` with everything but the four callbacks the lanes give it.
ClusterFactory = Callable[..., ClusterLimits]


class Lanes:
    """The engine's deliveries from claim to start: rate slots, host slots, lanes."""

    def __init__(
        self,
        clock: Clock,
        *,
        holding: Holding,
        recorder: Recorder,
        wakeups: Wakeups,
        hosts: HostGate,
        waits: QueueBudget,
        start_by: float,
        rate_hold: float,
        attempt: Callable[[Job], Awaitable[Job | None]],
        cluster: ClusterFactory | None = None,
    ) -> None:
        self.clock = clock
        self.holding = holding
        self.recorder = recorder
        self.wakeups = wakeups
        self.hosts = hosts
        self.rates = RateSlots()
        self.backoff = SaturationBackoff()
        self.waits = waits
        self.start_by = start_by  # a delivery not started this long after its claim goes back
        self.rate_hold = rate_hold  # how far ahead a rate slot may be and the job still wait
        self._attempt = attempt
        # Several processes deliver (PostgreSQL): the per-host cap and the rates are kept in the
        # database so that they hold for the whole deployment, not per process.
        self.cluster: ClusterLimits | None = None
        if cluster is not None:
            self.cluster = cluster(
                demand=self.demand,
                on_slots=self.serve_waiting,
                on_start_slot=self._on_start_slot,
                on_no_start_slot=self._on_no_start_slot,
            )
        self._queued: dict[str, deque[Job]] = {}  # per origin, waiting for a slot
        self._rate_timers: dict[str, tuple[asyncio.TimerHandle, Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop  # the running loop, from start() on

    def start(self) -> None:
        # Kept: asyncio.get_running_loop() costs a getpid() system call on every call (3.11),
        # and admission asks for the loop's time for every delivery.
        self._loop = asyncio.get_running_loop()
        if self.cluster is not None:
            self.cluster.start()

    async def stop(self, grace_seconds: float) -> None:
        """What has not started goes back to the queue at once; attempts under way get
        `grace_seconds` to finish, then are cancelled (and handed back)."""
        if self.cluster is not None:
            for job in await self.cluster.stop():
                self.hand_back(job, None)
        for handle, job in list(self._rate_timers.values()):
            handle.cancel()
            self.hand_back(job, None)
        self._rate_timers.clear()
        for waiting in self._queued.values():
            while waiting:
                self.hand_back(waiting.popleft(), None)
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
            for task in pending:
                task.cancel()  # the attempt's delivery is handed back (it may have arrived)
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    def prune(self, now: float) -> None:
        """Forget the rate schedules of subscriptions quiet for a while."""
        self.rates.prune(now)

    def snapshot(self) -> dict[str, Any]:
        return {
            "inflight": len(self._tasks),
            "queued": sum(len(q) for q in self._queued.values()),
            "rate_waiting": len(self._rate_timers),
        }

    # --- admission --------------------------------------------------------------------------

    def take(self, job: Job) -> None:
        """A delivery just leased to the engine: on its way to a lane (back, if stopping)."""
        if self.holding.stopping:
            self.hand_back(job, None)
        else:
            self._offer(job)

    def _offer(self, job: Job) -> None:
        rate = job.sub.rate_limit_per_second
        if not rate or rate <= 0:
            self._to_host(job)
            return
        if self.cluster is not None:
            # the subscription's schedule is shared: reserved with others in the next round
            self.cluster.ask(job, max(1, math.ceil(1_000_000 / rate)))
            return
        now = self._loop.time()
        at, granted = self.rates.reserve(job.sub.id, rate, now, self.rate_hold)
        if granted:
            self._at_start_slot(job, at)
        else:
            # Too far ahead to hold a lease for: due again when the schedule reaches it.
            self.hand_back(job, at - now)

    def _at_start_slot(self, job: Job, at: float) -> None:
        """`job` may start at loop time `at` (its rate slot), and not much later."""
        rate = job.sub.rate_limit_per_second or 1
        job.rate_until = at + rate_tolerance(rate)
        if self.holding.stopping:
            self.hand_back(job, None)
            return
        if at <= self._loop.time():
            self._to_host(job)
        else:
            handle = self._loop.call_at(at, self._rate_ready, job)
            self._rate_timers[job.claimed.id] = (handle, job)

    def _on_start_slot(self, job: Job, at_wall: float) -> None:
        """A slot of the cluster-wide schedule (wall-clock seconds) for `job`."""
        self._at_start_slot(job, self._loop.time() + at_wall - self.clock.now())

    def _on_no_start_slot(self, job: Job, next_wall: float) -> None:
        if self.holding.stopping:
            self.hand_back(job, None)
        else:
            self.hand_back(job, max(0.0, next_wall - self.clock.now()))

    def _rate_ready(self, job: Job) -> None:
        self._rate_timers.pop(job.claimed.id, None)
        if self.holding.stopping:
            self.hand_back(job, None)
        else:
            self._to_host(job)

    # --- host slots and lanes ---------------------------------------------------------------

    def _enter(self, origin: str) -> int | None:
        """One of `origin`'s slots for a lane, if this process has a free one (None: not now)."""
        if self.cluster is None:
            return 0 if self.hosts.try_enter(origin) else None
        return self.cluster.take(origin, self._loop.time())

    def _leave(self, origin: str, slot: int) -> None:
        if self.cluster is None:
            self.hosts.leave(origin)
        else:
            self.cluster.give_back(origin, slot, self._loop.time())

    def _to_host(self, job: Job) -> None:
        origin = job.origin
        slot = self._enter(origin)
        if slot is not None:
            self.backoff.reset(origin)
            self._start(job, slot)
            return
        waiting = self._queued.setdefault(origin, deque())
        queued = len(waiting)
        if self.cluster is not None:
            # those that would have a lane once this process has its share of the host's slots
            # do not wait behind the host
            queued -= max(0, self.cluster.share(origin) - self.cluster.book.held(origin))
        if self.waits.may_queue(origin, max(0, queued), self.hosts.cap):
            waiting.append(job)
            if self.cluster is not None:
                self.cluster.want(origin)  # more of the host's slots, if others leave some
        else:
            # The host is busy for longer than a lease should wait: back, for later.
            self.hand_back(job, self.backoff.delay(origin, self._loop.time()))

    def _start(self, job: Job, slot: int) -> None:
        """Open a lane with `slot` (taken already): a task that holds the slot and sends `job`,
        then whatever waits for that host, until nothing does. One task per slot rather than
        per attempt: under load a lane sends hundreds in a row. If `job` may no longer start,
        the next waiting one that may takes its place (or the slot is given back)."""
        if not self._may_start(job):
            next_job = self._next_waiting(job.origin)
            if next_job is None:
                self._leave(job.origin, slot)
                return
            job = next_job
        task = asyncio.create_task(self._lane(job, slot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _may_start(self, job: Job) -> bool:
        """May `job` start now? If not, it is dealt with here."""
        now = self._loop.time()
        if now - job.claimed_at > self.start_by:
            # Too late to be sure the attempt ends inside the lease: another worker might claim
            # it meanwhile and send it twice at once. Back to the queue instead.
            self.hand_back(job, None)
            return False
        if now > job.rate_until:
            # Started this late, it could crowd the next slots' second: a new slot instead.
            job.rate_until = math.inf
            self._offer(job)
            return False
        return True

    async def _lane(self, job: Job, slot: int) -> None:
        origin = job.origin
        cluster = self.cluster
        try:
            next_job: Job | None = job
            while next_job is not None:
                # the next of an ordered run goes on in this slot, as before any other job
                next_job = await self._attempt(next_job)
                if next_job is not None:
                    continue
                if cluster is not None and not cluster.usable(origin, slot, self._loop.time()):
                    break  # the slot's lease could end during another attempt
                next_job = self._next_waiting(origin)
        finally:
            self._leave(origin, slot)
            # Only an attempt that raised, or a slot whose lease is running out, leaves jobs
            # behind: they get lanes of their own.
            self.serve_waiting(origin)

    def serve_waiting(self, origin: str) -> None:
        """Open lanes for the jobs waiting for `origin` while this process has free slots
        (slots just acquired, or a lane that ended early)."""
        waiting = self._queued.get(origin)
        while waiting and not self.holding.stopping:
            slot = self._enter(origin)
            if slot is None:
                if self.cluster is not None:
                    self.cluster.want(origin)
                return
            job = self._next_waiting(origin)
            if job is None:
                self._leave(origin, slot)
                return
            self.backoff.reset(origin)  # the host had room after all
            self._start(job, slot)

    def _next_waiting(self, origin: str) -> Job | None:
        """The next job queued for `origin` that may still start (None: the lane closes)."""
        waiting = self._queued.get(origin)
        job = None
        while waiting and not self.holding.stopping:
            candidate = waiting.popleft()
            if self._may_start(candidate):
                job = candidate
                break
        if waiting is not None and not waiting and self._queued.get(origin) is waiting:
            self._queued.pop(origin, None)
        return job

    def demand(self, origin: str) -> int:
        """Jobs waiting for a slot of `origin` (what the cluster-wide slots are asked for)."""
        waiting = self._queued.get(origin)
        return len(waiting) if waiting else 0

    def hand_back(self, job: Job, delay_seconds: float | None) -> None:
        """Give the lease up; with a delay the delivery is due again only then."""
        when = None
        if delay_seconds is not None:
            when = self.clock.now_ms() + int(delay_seconds * 1000)
            self.wakeups.wake_in(delay_seconds)
        self.recorder.release(job.claimed.id, when)
        self.holding.done()
        self.hand_back_run(job)

    def hand_back_run(self, job: Job) -> None:
        """Give up the leases of the run behind an ordered head: due again at once, still
        behind the head (which stays pending) in their lane."""
        for follower in job.follow:
            self.recorder.release(follower.claimed.id, None)
            self.holding.done()
        job.follow = []

    def end_run(self, job: Job) -> None:
        """`job`, the next of an ordered run whose last outcome was a success, may no longer
        start inside its lease: it and the rest go back, due at once, and the claim loop is
        woken once that outcome is written."""
        self.hand_back(job, None)
        self.recorder.run_ended()

"""Where the delivery engine's deliveries come from: claimed from the queue, or handed over.

The claim loop sleeps until a wake-up (or the slow poll), then leases due deliveries in batches
while there is room and the last batch came back full (`queue.claim_due`), reads their
subscriptions and event bodies, and passes each on to the lanes, or settles it at once when
its subscription is gone or disabled or its event was purged. The dispatcher of this process
writes fresh deliveries already leased to the engine and hands them over after its commit
(`accept`): the `Claimer` is the context's `LocalEngine`, with the room of `Holding`.
"""

from __future__ import annotations

import asyncio
import logging

from causeflow.clock import Clock
from causeflow.db.engine import Database
from causeflow.metrics import QUEUE_DEPTH, QUEUE_OLDEST_AGE
from causeflow.runtime import finish
from causeflow.webhook import queue
from causeflow.webhook.holding import COUNT, Holding, Job
from causeflow.webhook.lanes import Lanes
from causeflow.webhook.limits import origin_of
from causeflow.webhook.queue import Claimed, Outcome
from causeflow.webhook.recorder import Recorder
from causeflow.webhook.subscriptions import Subscription, SubscriptionCache
from causeflow.webhook.wakeups import Wakeups

log = logging.getLogger("causeflow.webhook.worker")

STATS_SECONDS = 5.0  # queue depth / age gauges refresh
RUN = 128  # deliveries an ordered head brings along from its lane (see queue.claim_due)
ENVELOPE_CACHE = 4096  # events' bodies kept (every subscription of an event sends the same bytes)


class Claimer:
    """The engine's intake: the claim loop, and the dispatcher's hand-over."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        owner: str,
        lease_ms: int,
        poll_seconds: float,
        batch_size: int,
        subs: SubscriptionCache,
        holding: Holding,
        lanes: Lanes,
        recorder: Recorder,
        wakeups: Wakeups,
    ) -> None:
        self.db = db
        self.clock = clock
        self.owner = owner
        self.lease_ms = lease_ms
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.subs = subs
        self.holding = holding
        self.lanes = lanes
        self.recorder = recorder
        self.wakeups = wakeups
        self._envelopes: dict[str, bytes] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._claim_loop(), name="delivery-claim")

    async def stop(self, seconds: float) -> None:
        """Wait up to `seconds` for the claim under way (the engine is stopping already)."""
        await finish(self._task, seconds)

    # --- fresh deliveries from this process's dispatcher ------------------------------------

    async def wait_for_room(self, timeout: float) -> None:
        await self.holding.wait_for_room(timeout)

    def room(self) -> int:
        return self.holding.room()

    def reserve(self, wanted: int) -> int:
        return self.holding.reserve(wanted)

    def unreserve(self, count: int) -> None:
        self.holding.unreserve(count)

    def accept(self, jobs: list[tuple[Claimed, Subscription, bytes]], leased_at: float) -> None:
        """Committed deliveries leased to us by the dispatcher: no claim, no read, straight on."""
        self.holding.handed_over(len(jobs))
        for claimed, sub, body in jobs:
            self.lanes.take(Job(claimed, sub, body, origin_of(sub.url), leased_at))

    # --- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_stats = 0.0
        failures = 0
        while not self.holding.stopping:
            await self.wakeups.wait(self.poll_seconds)
            if self.holding.stopping:
                break
            try:
                await self._claim_all()
                failures = 0
                if loop.time() >= next_stats:
                    next_stats = loop.time() + STATS_SECONDS
                    await self._refresh_stats(loop)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("claiming deliveries failed")
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))

    async def _refresh_stats(self, loop: asyncio.AbstractEventLoop) -> None:
        """The queue's depth and age gauges; old rate schedules forgotten."""
        depth, age = await queue.queue_stats(self.db, self.clock.now_ms())
        QUEUE_DEPTH.set(depth)
        QUEUE_OLDEST_AGE.set(age)
        self.lanes.prune(loop.time())

    async def _claim_all(self) -> None:
        """Claim batches while there is room and the last batch came back full."""
        # the read-only look is skipped when the dispatcher said it just added deliveries
        first = not self.wakeups.take_work_added()
        while not self.holding.stopping:
            free = self.holding.claimable()
            if not free:
                return  # a delivery done wakes us
            limit = min(self.batch_size, free)
            now_ms = self.clock.now_ms()
            if first and not await queue.any_due(self.db, now_ms):
                return
            first = False
            claimed_at = asyncio.get_running_loop().time()
            rows = await queue.claim_due(
                self.db,
                owner=self.owner,
                now_ms=now_ms,
                lease_ms=self.lease_ms,
                limit=limit,
                run=RUN,
            )
            if rows:
                await self._admit(rows, claimed_at)
            if len(rows) < limit:
                return

    async def _admit(self, rows: list[Claimed], claimed_at: float) -> None:
        # read now, not from a cache: a PATCH answered before this claim applies to it
        subs = await self.subs.current(r.subscription_id for r in rows)
        await self._load_envelopes([r for row in rows for r in (row, *row.run)])
        now_ms = self.clock.now_ms()
        for row in rows:
            sub = subs.get(row.subscription_id)
            job = self._job(row, sub, claimed_at, now_ms)
            if job is not None:
                self.holding.hold()
                self._follow(job, row.run, claimed_at, now_ms)
                self.lanes.take(job)
            elif row.run:
                for follower in row.run:  # behind a head settled without an attempt
                    self.recorder.release(follower.id, None)
        if self.lanes.cluster is not None:
            # Before claiming more: the slots these deliveries wait for, so that their lanes
            # start and the host's answer times are known (an unknown host gets one round).
            await self.lanes.cluster.settled()

    def _follow(self, job: Job, run: tuple[Claimed, ...], claimed_at: float, now_ms: int) -> None:
        """Attach an ordered head's run to its job; a rate-limited subscription's run goes
        back (each of its deliveries waits for a start slot of its own)."""
        for follower in run:
            if job.sub.rate_limit_per_second is not None:
                self.recorder.release(follower.id, None)
                continue
            body = self._envelopes.get(follower.event_id)
            if body is None:  # purged: handed back, settled when it is claimed as a head
                self.recorder.release(follower.id, None)
                continue
            self.holding.hold()
            job.follow.append(Job(follower, job.sub, body, job.origin, claimed_at))

    async def _load_envelopes(self, rows: list[Claimed]) -> None:
        """The bodies of the rows' events not cached yet (test deliveries carry their own)."""
        wanted = {
            r.event_id for r in rows if r.payload is None and r.event_id not in self._envelopes
        }
        if not wanted:
            return
        found = await queue.load_envelopes(self.db, wanted)
        for event_id, text in found.items():
            self._envelopes[event_id] = text.encode()
        while len(self._envelopes) > ENVELOPE_CACHE:
            del self._envelopes[next(iter(self._envelopes))]

    def _job(
        self, row: Claimed, sub: Subscription | None, claimed_at: float, now_ms: int
    ) -> Job | None:
        """The claimed row ready to send, or None when it was settled without an attempt."""
        if sub is None or sub.tenant_id != row.tenant_id:
            self._settle(row, "cancelled", "subscription_deleted", now_ms)
            return None
        if not sub.enabled:
            self._settle(row, "failed", "endpoint_disabled", now_ms)
            return None
        body = (
            row.payload.encode() if row.payload is not None else self._envelopes.get(row.event_id)
        )
        if body is None:
            # purged by retention before it could be delivered
            self._settle(row, "failed", "event_missing", now_ms)
            return None
        return Job(row, sub, body, origin_of(sub.url), claimed_at)

    def _settle(self, row: Claimed, status: str, reason: str, now_ms: int) -> None:
        """An outcome with no HTTP attempt (the subscription is gone or disabled)."""
        COUNT[reason].inc()
        self.recorder.push(
            Outcome(
                delivery_id=row.id,
                tenant_id=row.tenant_id,
                subscription_id=row.subscription_id,
                event_id=row.event_id,
                status=status,
                now_ms=now_ms,
                last_error=reason,
                attempts=row.attempts,
            )
        )

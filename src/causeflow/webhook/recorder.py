"""The delivery engine's outcome recorder: attempts' outcomes and hand-backs, many per write.

Lanes push an outcome per attempt and a release per delivery handed back; one flush loop
writes whatever has gathered while the previous write ran (`queue.record`: one transaction, up
to `RECORD_BATCH` outcomes), waiting for company (up to `FLUSH_ENOUGH` outcomes, at most
`FLUSH_LINGER_SECONDS`) unless an ordered lane waits for the record. A failed
write is kept and tried again; if the database stays away the leases run out and the
deliveries are sent again (at-least-once). After a write it invalidates the subscriptions the
outcomes changed and plans a wake-up for the earliest retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from causeflow.clock import Clock
from causeflow.db.engine import Database
from causeflow.runtime import finish
from causeflow.webhook import queue
from causeflow.webhook.queue import Outcome
from causeflow.webhook.subscriptions import SubscriptionCache

log = logging.getLogger("causeflow.webhook.worker")

RECORD_BATCH = 1000  # outcomes per transaction
# Outcomes wait up to this long for company before a write (a receiver already has its request,
# so this only delays the bookkeeping), or until this many have gathered: under load one
# transaction records hundreds of attempts, and an outcome's share of a write (the statements,
# the commit, the index pages it dirties) shrinks with the batch.
FLUSH_LINGER_SECONDS = 0.1
FLUSH_ENOUGH = 512
RELEASE_LINGER_SECONDS = 0.02  # the linger when a hand-back waits to be written
# The middle of an ordered run: nothing waits for its record but its lease (the run goes on
# with the next send), so it is written within this long (an urgent push, enough company or a
# release takes it along sooner): a run of hundreds is a few transactions.
RUN_LINGER_SECONDS = 0.1


class Recorder:
    """Outcomes and hand-backs waiting to be written, and the loop that writes them."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        owner: str,
        disable_after_ms: int,
        subs: SubscriptionCache,
        wake_in: Callable[[float], None],
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.owner = owner
        self.disable_after_ms = disable_after_ms
        self.subs = subs
        self._wake_in = wake_in  # plans the claim of a retry when it is due
        self._wake = wake  # a claim at once: an ordered lane's next delivery became due
        self._outcomes: list[Outcome] = []
        self._releases: list[tuple[str, int | None]] = []
        self._flush = asyncio.Event()
        self._enough = asyncio.Event()  # the linger is over: enough company, or in a hurry
        self._closing = False
        self._urgent = False
        self._due = False  # lazy outcomes have waited their time: no linger for company
        self._wake_after = False  # a run ended: wake the claim loop after the next writes
        self._later: asyncio.TimerHandle | None = None  # the flush of lazy outcomes
        self._task: asyncio.Task[None] | None = None

    @property
    def unrecorded(self) -> int:
        return len(self._outcomes) + len(self._releases)

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_loop(), name="delivery-flush")

    async def close(self, seconds: float) -> None:
        """Write what is left, then stop; cancelled only if the database does not answer
        within `seconds` (the leases then run out by themselves)."""
        if self._task is None:
            return
        self._closing = True
        if self._later is not None:
            self._later.cancel()
            self._later = None
        self._flush.set()
        self._enough.set()
        await finish(self._task, seconds)

    def push(self, outcome: Outcome, *, urgent: bool = False, lazy: bool = False) -> None:
        """Record `outcome` soon; `urgent`: without waiting for company (the next delivery
        of an ordered lane waits for it); `lazy`: within `RUN_LINGER_SECONDS` (the middle of
        an ordered run, still leased)."""
        self._outcomes.append(outcome)
        if lazy and len(self._outcomes) < FLUSH_ENOUGH:
            if self._later is None:
                self._later = asyncio.get_running_loop().call_later(
                    RUN_LINGER_SECONDS, self._flush_later
                )
            return
        self._urgent |= urgent
        self._flush.set()
        if urgent or len(self._outcomes) >= FLUSH_ENOUGH:
            self._enough.set()

    def _flush_later(self) -> None:
        self._later = None
        self._due = True  # the lazy outcomes have waited their time: no further linger
        self._flush.set()
        self._enough.set()

    def run_ended(self) -> None:
        """An ordered run ended after a success pushed as one of its middle: write soon, and
        wake the claim loop once written (the lane's next delivery is claimable then)."""
        self._urgent = True
        self._wake_after = True
        self._flush.set()
        self._enough.set()

    def release(self, delivery_id: str, due_ms: int | None) -> None:
        """Give a lease up: the delivery is due again at once (None) or at `due_ms`."""
        self._releases.append((delivery_id, due_ms))
        self._flush.set()
        self._enough.set()  # the linger is shorter now

    async def _flush_loop(self) -> None:
        """Write what has accumulated while the previous write ran: one transaction, many rows."""
        failures = 0
        while True:
            await self._flush.wait()
            await self._linger()
            self._flush.clear()
            self._urgent = self._due = False
            while self._outcomes or self._releases:
                if await self._write():
                    failures = 0
                    continue
                # Kept and retried; if the database stays away the leases run out and the
                # deliveries are sent again (at-least-once).
                failures += 1
                await asyncio.sleep(min(5.0, 0.05 * 2**failures))
            if self._wake_after and self._wake is not None:
                self._wake_after = False
                self._wake()
            if self._closing:
                return

    async def _linger(self) -> None:
        """Wait for company: until `FLUSH_ENOUGH` outcomes are pending, an urgent one comes,
        lazy ones have waited `RUN_LINGER_SECONDS` or the recorder closes, for at most
        `FLUSH_LINGER_SECONDS` (`RELEASE_LINGER_SECONDS` once a hand-back waits: its delivery
        is due again only when it is written)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while len(self._outcomes) < FLUSH_ENOUGH and not (
            self._closing or self._urgent or self._due
        ):
            linger = RELEASE_LINGER_SECONDS if self._releases else FLUSH_LINGER_SECONDS
            left = started + linger - loop.time()
            if left <= 0:
                return
            self._enough.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._enough.wait(), left)

    async def _write(self) -> bool:
        """One transaction's worth; on failure it is put back in front (False)."""
        outcomes, self._outcomes = self._outcomes[:RECORD_BATCH], self._outcomes[RECORD_BATCH:]
        releases, self._releases = self._releases, []
        try:
            recorded = await queue.record(
                self.db,
                owner=self.owner,
                now_ms=self.clock.now_ms(),
                outcomes=outcomes,
                releases=releases,
                disable_after_ms=self.disable_after_ms,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("recording %d delivery outcomes failed", len(outcomes))
            self._outcomes[:0] = outcomes
            self._releases[:0] = releases
            return False
        self._after_record(outcomes, recorded)
        return True

    def _after_record(self, outcomes: list[Outcome], recorded: queue.Recorded) -> None:
        for tenant_id, sid in recorded.changed_subscriptions:
            self.subs.invalidate(subscription_id=sid, tenant_id=tenant_id)
        for sid in recorded.disabled:
            log.warning("subscription %s disabled", sid)
        lost = len(outcomes) - recorded.applied
        if lost:
            log.warning("%d outcomes arrived after their lease was taken over; not applied", lost)
        retries = [
            o.next_attempt_at for o in outcomes if o.status == "pending" and o.next_attempt_at
        ]
        if retries:
            self._wake_in((min(retries) - self.clock.now_ms()) / 1000)
        if self._wake is not None and any(o.ordered and o.status != "pending" for o in outcomes):
            self._wake()  # the next delivery of an ordered lane is claimable now

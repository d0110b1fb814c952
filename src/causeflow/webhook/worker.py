"""The delivery engine: claims due deliveries, sends them signed, records outcomes in batches.

One `DeliveryEngine` per process with the `worker` role. A claim loop leases due deliveries
(woken by the dispatcher, the broker and a slow poll); admission limits decide which start now
(per-host cap, per-subscription rate, a bound on what the engine holds); one task per busy host
slot (a lane) sends one delivery after another through the shared `Sender`; a flush loop writes
outcomes many per transaction. Shutdown stops claiming, lets attempts finish for a short grace
and hands the rest back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import secrets as _secrets
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from causeflow import __version__
from causeflow.context import AppContext
from causeflow.metrics import ATTEMPT_LATENCY, DELIVERIES, QUEUE_DEPTH, QUEUE_OLDEST_AGE
from causeflow.runtime import Component, Stop
from causeflow.settings import Settings
from causeflow.webhook import queue
from causeflow.webhook.cluster import ClusterLimits
from causeflow.webhook.limits import (
    HostGate,
    QueueBudget,
    RateSlots,
    SaturationBackoff,
    origin_of,
    rate_tolerance,
)
from causeflow.webhook.outcome import Attempt, delivery_step
from causeflow.webhook.queue import Claimed, Outcome
from causeflow.webhook.recorder import Recorder
from causeflow.webhook.retry import parse_schedule
from causeflow.webhook.sender import Sender, SendResult
from causeflow.webhook.signing import delivery_headers
from causeflow.webhook.ssrf import parse_allow_cidrs
from causeflow.webhook.subscriptions import Subscription, SubscriptionCache, subscription_cache
from causeflow.webhook.wakeups import Wakeups

log = logging.getLogger("causeflow.webhook.worker")

# Labelled children looked up once: attempts count them thousands of times a second.
_COUNT = {
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

CLAIM_BATCH = 256  # deliveries per claim query (bounded by free capacity too)
SHUTDOWN_GRACE_SECONDS = 5.0  # in-flight attempts get at most this long to finish on stop()
STOP_DB_SECONDS = 5.0  # on stop(), the last claim and the last writes get this long
RATE_HOLD_SECONDS = 2.0  # a rate-limited delivery waits locally up to this, else goes back
STATS_SECONDS = 5.0  # queue depth / age gauges refresh
ENVELOPE_CACHE = 4096  # events' bodies kept (every subscription of an event sends the same bytes)
RESPONSE_BODY_CHARS = 4096


def last_error_of(result: SendResult) -> str:
    """`HTTP 503 Service Unavailable`, or the network error (`timeout`, `ssrf_blocked`, ...)."""
    if result.error:
        return result.error
    try:
        phrase = HTTPStatus(result.status or 0).phrase
    except ValueError:
        phrase = ""
    return f"HTTP {result.status} {phrase}".strip()


def decide(
    claimed: Claimed,
    result: SendResult,
    *,
    schedule: tuple[float, ...],
    rng: random.Random,
    now_ms: int,
    url: str,
) -> Outcome:
    """The outcome of one attempt (pure: time and randomness come in); the rules are
    `outcome.delivery_step`'s. Test deliveries (`payload` set) touch neither the subscription
    nor the log.
    """
    step = delivery_step(
        Attempt(result.ok, result.status, result.retry_after),
        attempts=claimed.attempts + 1,
        manual=claimed.manual,
        test=claimed.payload is not None,
        now_ms=now_ms,
        schedule=schedule,
        rng=rng,
    )
    error = None if result.ok else last_error_of(result)
    return Outcome(
        delivery_id=claimed.id,
        tenant_id=claimed.tenant_id,
        subscription_id=claimed.subscription_id,
        event_id=claimed.event_id,
        status=step.status,
        now_ms=now_ms,
        attempted=True,
        status_code=result.status,
        latency_ms=round(result.latency_ms),
        error=error,
        response_body=result.body[:RESPONSE_BODY_CHARS].decode("utf-8", errors="replace"),
        last_error=error,
        next_attempt_at=step.next_attempt_at,
        attempts=claimed.attempts + 1,
        effect=step.effect,
        url=url,
    )


def build_sender(settings: Settings) -> Sender:
    """The process's delivery client; `webhook_ca_file` is trusted instead of the system CAs."""
    context = (
        ssl.create_default_context(cafile=settings.webhook_ca_file)
        if settings.webhook_ca_file
        else None
    )
    return Sender(
        allow_cidrs=parse_allow_cidrs(settings.webhook_allow_cidrs),
        allow_http=settings.webhook_allow_http,
        connect_timeout=settings.webhook_connect_timeout_seconds,
        total_timeout=settings.webhook_timeout_seconds,
        max_connections=max(1, settings.webhook_max_inflight),
        ssl_context=context,
        dns_cache_seconds=settings.webhook_dns_cache_seconds,
    )


@dataclass(slots=True)
class Job:
    """A claimed delivery ready to send: its subscription and the exact body bytes."""

    claimed: Claimed
    sub: Subscription
    body: bytes
    origin: str
    claimed_at: float  # loop time of the claim: the lease runs from here
    rate_until: float = math.inf  # a rate-limited job must start by then (its slot + tolerance)


class DeliveryEngine:
    def __init__(
        self,
        ctx: AppContext,
        *,
        owner: str | None = None,
        sender: Sender | None = None,
        grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
        batch_size: int = CLAIM_BATCH,
        rng: random.Random | None = None,
    ) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.db = ctx.db
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{_secrets.token_hex(4)}"
        self.schedule = parse_schedule(settings.webhook_retry_schedule)
        self.lease_ms = int(settings.webhook_lease_seconds * 1000)
        self.disable_after_ms = int(settings.webhook_disable_after_seconds * 1000)
        self.poll_seconds = max(0.01, settings.webhook_poll_seconds)
        self.capacity = max(1, settings.webhook_max_inflight)
        self.batch_size = max(1, batch_size)
        # Below this many free slots a claim waits for attempts to finish: no tiny batches.
        self.min_claim = max(1, min(self.capacity, self.batch_size) // 4)
        # No attempt outlives the request timeout, so waiting longer than it is pointless.
        self.grace_seconds = min(grace_seconds, settings.webhook_timeout_seconds + 0.1)
        # One cache per process, shared with the dispatcher and the API (which invalidates it).
        self.subs: SubscriptionCache = subscription_cache(ctx)
        self.sender = sender
        self._own_sender = sender is None
        self.hosts = HostGate(settings.webhook_max_inflight_per_host)
        self.rates = RateSlots()
        self.backoff = SaturationBackoff()
        # A claimed delivery must start early enough that even an attempt running into the
        # timeout ends inside its lease; later than `start_by` after the claim it goes back.
        # Waiting locally is allowed for half of that margin (estimated from recent attempts).
        margin = max(0.0, settings.webhook_lease_seconds - settings.webhook_timeout_seconds)
        self.start_by = margin * 0.8
        self.waits = QueueBudget(margin * 0.5)
        # A rate-limited delivery waits locally for its slot up to this, well before start_by.
        self.rate_hold = min(RATE_HOLD_SECONDS, self.start_by / 2)
        # Several processes deliver (PostgreSQL): the per-host cap and the rates are kept in the
        # database so that they hold for the whole deployment, not per process.
        self.cluster: ClusterLimits | None = None
        if self.db.dialect.shared_limits:
            self.cluster = ClusterLimits(
                self.db,
                ctx.clock,
                owner=self.owner,
                cap=settings.webhook_max_inflight_per_host,
                lease_seconds=settings.webhook_lease_seconds,
                attempt_seconds=settings.webhook_timeout_seconds + 0.5,
                hold_seconds=self.rate_hold,
                demand=self._demand,
                on_slots=self.serve_waiting,
                on_start_slot=self._on_start_slot,
                on_no_start_slot=self._on_no_start_slot,
            )
        self.rng = rng or random.Random()
        self.attempted = 0  # attempts made since start
        self.held = 0  # leased deliveries not yet sent or handed back (waiting + in flight)
        self._queued: dict[str, deque[Job]] = {}  # per origin, waiting for a slot
        self._rate_timers: dict[str, tuple[asyncio.TimerHandle, Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._envelopes: dict[str, bytes] = {}
        self.wakeups = Wakeups()
        self.recorder = Recorder(
            self.db,
            ctx.clock,
            owner=self.owner,
            disable_after_ms=self.disable_after_ms,
            subs=self.subs,
            wake_in=self.wakeups.wake_in,
        )
        self._starved = False
        self._stopping = False
        self._claim_task: asyncio.Task[None] | None = None
        self._wakers: list[Callable[[], None]] | None = None
        self._reserved = 0  # room the dispatcher reserved for a batch not yet handed over
        self._room = asyncio.Event()  # set when a batch of fresh deliveries would fit
        self._loop: asyncio.AbstractEventLoop  # the running loop, from start() on

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        # Kept: asyncio.get_running_loop() costs a getpid() system call on every call (3.11),
        # and admission asks for the loop's time for every delivery.
        self._loop = asyncio.get_running_loop()
        if self.sender is None:
            self.sender = build_sender(self.ctx.settings)
        await self.sender.start()
        if self.cluster is not None:
            self.cluster.start()
        if self.db.dialect.multi_process:
            # Another process's dispatcher may create the deliveries (PostgreSQL): its event
            # commits reach us through the broker. With one process (SQLite) the dispatcher
            # here wakes us directly after inserting, and event commits are no news.
            self.ctx.broker.add_listener(self.wakeups.on_broker)
        # The dispatcher calls ctx.delivery_wakeup() after inserting deliveries; with several
        # engines in one process (tests) every one of them is woken.
        wakers: list[Callable[[], None]] = self.ctx.delivery_wakers
        wakers.append(self.wakeups.work_added)
        self._wakers = wakers
        self.ctx.delivery_wakeup = lambda: [w() for w in list(wakers)]
        # The dispatcher of this process leases fresh deliveries to one engine and hands them
        # over after its commit (see `accept`); with several engines (tests) the first one.
        if self.ctx.local_engine is None:
            self.ctx.local_engine = self
        self.recorder.start()
        self._claim_task = asyncio.create_task(self._claim_loop(), name="delivery-claim")
        self.wakeups.wake()

    async def stop(self) -> None:
        """Stop claiming, let attempts finish for the grace, hand back the rest, then return."""
        if self._stopping:
            return
        self._stopping = True
        self._room.set()
        if self.ctx.local_engine is self:
            self.ctx.local_engine = None
        self.ctx.broker.remove_listener(self.wakeups.on_broker)
        if self._wakers is not None:
            with contextlib.suppress(ValueError):
                self._wakers.remove(self.wakeups.work_added)
        self.wakeups.stop()
        if self._claim_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._claim_task), STOP_DB_SECONDS)
            except (TimeoutError, Exception):
                self._claim_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._claim_task
        # A dispatch batch leasing to us may still be committing: let it hand its deliveries
        # over (they go back at once, below) while the flush loop still runs.
        deadline = asyncio.get_running_loop().time() + STOP_DB_SECONDS
        while self._reserved and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        # Not started yet: back to the queue at once, for another worker.
        if self.cluster is not None:
            for job in await self.cluster.stop():
                self._hand_back(job, None)
        for _handle, job in list(self._rate_timers.values()):
            _handle.cancel()
            self._hand_back(job, None)
        self._rate_timers.clear()
        for waiting in self._queued.values():
            while waiting:
                self._hand_back(waiting.popleft(), None)
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=self.grace_seconds)
            for task in pending:
                task.cancel()  # the attempt's delivery is handed back (it may have arrived)
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        await self.recorder.close(STOP_DB_SECONDS)
        try:
            # Anything still leased to us (an unrecorded outcome, a failed hand-back) is due
            # again at once; a crash skips this and the leases simply run out.
            await queue.release_all(self.db, owner=self.owner)
        except Exception:
            log.exception("could not release leases on shutdown; they expire by themselves")
        if self.cluster is not None:
            try:
                await self.cluster.release_all()
            except Exception:
                log.exception("could not release host slots on shutdown; they expire by themselves")
        if self.sender is not None and self._own_sender:
            await self.sender.close()

    def wake(self) -> None:
        """New work may be due: claim soon (cheap, coalesced, callable from any callback)."""
        self.wakeups.wake()

    # --- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_stats = 0.0
        failures = 0
        while not self._stopping:
            await self.wakeups.wait(self.poll_seconds)
            if self._stopping:
                break
            try:
                await self._claim_all()
                failures = 0
                if loop.time() >= next_stats:
                    next_stats = loop.time() + STATS_SECONDS
                    depth, age = await queue.queue_stats(self.db, self.ctx.clock.now_ms())
                    QUEUE_DEPTH.set(depth)
                    QUEUE_OLDEST_AGE.set(age)
                    self.rates.prune(loop.time())
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("claiming deliveries failed")
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))

    async def _claim_all(self) -> None:
        """Claim batches while there is room and the last batch came back full."""
        # the read-only look is skipped when the dispatcher said it just added deliveries
        first = not self.wakeups.take_work_added()
        while not self._stopping:
            free = self.capacity - self.held
            if free < self.min_claim:
                self._starved = True  # an attempt finishing wakes us
                return
            limit = min(self.batch_size, free)
            now_ms = self.ctx.clock.now_ms()
            if first and not await queue.any_due(self.db, now_ms):
                return
            first = False
            claimed_at = asyncio.get_running_loop().time()
            rows = await queue.claim_due(
                self.db, owner=self.owner, now_ms=now_ms, lease_ms=self.lease_ms, limit=limit
            )
            if rows:
                await self._admit(rows, claimed_at)
            if len(rows) < limit:
                return

    # --- fresh deliveries from this process's dispatcher ----------------------------------------

    def has_room(self) -> bool:
        return self._stopping or self.capacity - self.held >= self.capacity // 2

    def room(self) -> int:
        return 0 if self._stopping else max(0, self.capacity - self.held)

    async def wait_for_room(self, timeout: float) -> None:
        """The dispatcher's pacing: until a batch fits (or `timeout` seconds pass)."""
        if self.has_room():
            return
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout)

    def reserve(self, wanted: int) -> int:
        """Room for up to `wanted` deliveries the dispatcher is about to write leased to us."""
        if self._stopping:
            return 0
        take = min(wanted, self.room())
        self.held += take
        self._reserved += take
        return take

    def unreserve(self, count: int) -> None:
        """The batch that reserved `count` did not commit: nothing was leased to us."""
        self._reserved -= count
        for _ in range(count):
            self._done_holding()

    def accept(self, jobs: list[tuple[Claimed, Subscription, bytes]], leased_at: float) -> None:
        """Committed deliveries leased to us by the dispatcher: no claim, no read, straight on."""
        self._reserved -= len(jobs)
        for claimed, sub, body in jobs:
            job = Job(claimed, sub, body, origin_of(sub.url), leased_at)
            if self._stopping:
                self._hand_back(job, None)
            else:
                self._offer(job)

    async def _admit(self, rows: list[Claimed], claimed_at: float) -> None:
        subs: dict[str, Subscription | None] = {}
        for sid in {r.subscription_id for r in rows}:
            subs[sid] = await self.subs.get(sid)
        wanted = {
            r.event_id for r in rows if r.payload is None and r.event_id not in self._envelopes
        }
        if wanted:
            found = await queue.load_envelopes(self.db, wanted)
            for event_id, text in found.items():
                self._envelopes[event_id] = text.encode()
            while len(self._envelopes) > ENVELOPE_CACHE:
                del self._envelopes[next(iter(self._envelopes))]
        now_ms = self.ctx.clock.now_ms()
        for row in rows:
            sub = subs.get(row.subscription_id)
            if sub is None or sub.tenant_id != row.tenant_id:
                self._settle(row, "cancelled", "subscription_deleted", now_ms)
                continue
            if not sub.enabled:
                self._settle(row, "failed", "endpoint_disabled", now_ms)
                continue
            body = (
                row.payload.encode()
                if row.payload is not None
                else self._envelopes.get(row.event_id)
            )
            if body is None:
                # purged by retention before it could be delivered
                self._settle(row, "failed", "event_missing", now_ms)
                continue
            self.held += 1
            job = Job(row, sub, body, origin_of(sub.url), claimed_at)
            if self._stopping:
                self._hand_back(job, None)
            else:
                self._offer(job)
        if self.cluster is not None:
            # Before claiming more: the slots these deliveries wait for, so that their lanes
            # start and the host's answer times are known (an unknown host gets one round).
            await self.cluster.settled()

    def _settle(self, row: Claimed, status: str, reason: str, now_ms: int) -> None:
        """An outcome with no HTTP attempt (the subscription is gone or disabled)."""
        _COUNT[reason].inc()
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

    # --- admission --------------------------------------------------------------------------

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
            self._hand_back(job, at - now)

    def _at_start_slot(self, job: Job, at: float) -> None:
        """`job` may start at loop time `at` (its rate slot), and not much later."""
        rate = job.sub.rate_limit_per_second or 1
        job.rate_until = at + rate_tolerance(rate)
        if self._stopping:
            self._hand_back(job, None)
            return
        if at <= self._loop.time():
            self._to_host(job)
        else:
            handle = self._loop.call_at(at, self._rate_ready, job)
            self._rate_timers[job.claimed.id] = (handle, job)

    def _on_start_slot(self, job: Job, at_wall: float) -> None:
        """A slot of the cluster-wide schedule (wall-clock seconds) for `job`."""
        self._at_start_slot(job, self._loop.time() + at_wall - self.ctx.clock.now())

    def _on_no_start_slot(self, job: Job, next_wall: float) -> None:
        if self._stopping:
            self._hand_back(job, None)
        else:
            self._hand_back(job, max(0.0, next_wall - self.ctx.clock.now()))

    def _rate_ready(self, job: Job) -> None:
        self._rate_timers.pop(job.claimed.id, None)
        if self._stopping:
            self._hand_back(job, None)
        else:
            self._to_host(job)

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
            self._hand_back(job, self.backoff.delay(origin, self._loop.time()))

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
            self._hand_back(job, None)
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
                await self._attempt(next_job)
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
        while waiting and not self._stopping:
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
        while waiting and not self._stopping:
            candidate = waiting.popleft()
            if self._may_start(candidate):
                job = candidate
                break
        if waiting is not None and not waiting and self._queued.get(origin) is waiting:
            self._queued.pop(origin, None)
        return job

    def _demand(self, origin: str) -> int:
        """Jobs waiting for a slot of `origin` (what the cluster-wide slots are asked for)."""
        waiting = self._queued.get(origin)
        return len(waiting) if waiting else 0

    def _hand_back(self, job: Job, delay_seconds: float | None) -> None:
        """Give the lease up; with a delay the delivery is due again only then."""
        when = None
        if delay_seconds is not None:
            when = self.ctx.clock.now_ms() + int(delay_seconds * 1000)
            self.wakeups.wake_in(delay_seconds)
        self.recorder.release(job.claimed.id, when)
        self._done_holding()

    def _done_holding(self) -> None:
        self.held -= 1
        if self.capacity - self.held >= self.capacity // 2:
            self._room.set()
        if self._starved and self.capacity - self.held >= self.min_claim:
            self._starved = False
            self.wakeups.wake()

    # --- sending ----------------------------------------------------------------------------

    async def _attempt(self, job: Job) -> None:
        claimed, sub = job.claimed, job.sub
        assert self.sender is not None
        try:
            now_ms = self.ctx.clock.now_ms()
            headers = delivery_headers(
                event_type=claimed.event_type,
                msg_id=claimed.id,
                timestamp=now_ms // 1000,
                body=job.body,
                secrets=sub.signing_secrets(now_ms),
                version=__version__,
                extra=sub.headers,
            )
            result = await self.sender.send(sub.url, job.body, headers)
        except asyncio.CancelledError:
            # Shutdown after the grace: the receiver may have it already; at-least-once.
            self._hand_back(job, None)
            raise
        except Exception as exc:  # a bug in building the request must not kill the engine
            log.exception("delivery %s could not be sent", claimed.id)
            result = SendResult(None, 0.0, b"", f"invalid_request: {exc}"[:500])
        self.waits.observe(job.origin, result.latency_ms / 1000)
        self.attempted += 1
        ATTEMPT_LATENCY.observe(result.latency_ms / 1000)
        outcome = decide(
            claimed,
            result,
            schedule=self.schedule,
            rng=self.rng,
            now_ms=self.ctx.clock.now_ms(),
            url=sub.url,
        )
        _COUNT["retrying" if outcome.status == "pending" else outcome.status].inc()
        self.recorder.push(outcome)
        self._done_holding()

    def snapshot(self) -> dict[str, Any]:
        """Counters for tests and debugging."""
        return {
            "owner": self.owner,
            "attempted": self.attempted,
            "held": self.held,
            "inflight": len(self._tasks),
            "queued": sum(len(q) for q in self._queued.values()),
            "rate_waiting": len(self._rate_timers),
            "unrecorded": self.recorder.unrecorded,
            **(self.cluster.snapshot() if self.cluster is not None else {}),
        }


async def start_delivery(ctx: AppContext) -> Stop:
    engine = DeliveryEngine(ctx)
    await engine.start()
    ctx.delivery_engine = engine
    return engine.stop


def delivery_component() -> Component:
    """The `worker`-role component the composition root starts."""
    return Component("delivery", frozenset({"worker"}), start_delivery)

"""The delivery engine: claims due deliveries, sends them signed, records outcomes in batches.

One `DeliveryEngine` per process with the `worker` role, composed of parts that each own
their state and are handed their collaborators:

- `claiming.Claimer`: the claim loop (woken by the dispatcher, the broker and a slow poll)
  and the dispatcher's hand-over of fresh deliveries;
- `lanes.Lanes`: admission (per-subscription rate, per-host cap, a bound on how long a lease
  may wait) and one task per busy host slot (a lane) sending one delivery after another;
- `recorder.Recorder`: the flush loop writing outcomes and hand-backs many per transaction;
- `wakeups.Wakeups`: when the claim loop looks again;
- `holding.Holding`: how many leased deliveries the engine holds, and the room left.

This module builds them, makes an attempt (sign, send, `decide`) and starts and stops the
whole: shutdown stops claiming, lets attempts finish for a short grace and hands the rest back.
The log records of every part are `causeflow.webhook.worker`'s, as before the engine had parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import secrets as _secrets
import socket
import ssl
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from causeflow import __version__
from causeflow.context import AppContext
from causeflow.metrics import (
    ATTEMPT_LATENCY,
    SUBSCRIPTION_ATTEMPT_LATENCY,
    SUBSCRIPTION_ATTEMPTS,
)
from causeflow.runtime import Component, Stop
from causeflow.settings import Settings
from causeflow.tracing import spans
from causeflow.webhook import queue
from causeflow.webhook.claiming import Claimer
from causeflow.webhook.cluster import ClusterLimits
from causeflow.webhook.destinations.deliverer import Deliverer
from causeflow.webhook.destinations.pool import PublisherPool
from causeflow.webhook.egress import Egress
from causeflow.webhook.holding import COUNT, Holding, Job
from causeflow.webhook.lanes import ClusterFactory, Lanes
from causeflow.webhook.limits import HostGate, QueueBudget
from causeflow.webhook.outcome import Attempt, delivery_step
from causeflow.webhook.proxy import parse_proxy
from causeflow.webhook.queue import Claimed, Outcome
from causeflow.webhook.recorder import Recorder
from causeflow.webhook.retry import parse_schedule
from causeflow.webhook.sender import Sender, SendResult
from causeflow.webhook.signing import delivery_headers
from causeflow.webhook.ssrf import parse_allow_cidrs
from causeflow.webhook.subscriptions import SubscriptionCache, subscription_cache
from causeflow.webhook.wakeups import Wakeups

log = logging.getLogger("causeflow.webhook.worker")

CLAIM_BATCH = 256  # deliveries per claim query (bounded by free capacity too)
SHUTDOWN_GRACE_SECONDS = 5.0  # in-flight attempts get at most this long to finish on stop()
STOP_DB_SECONDS = 5.0  # on stop(), the last claim and the last writes get this long
RATE_HOLD_SECONDS = 2.0  # a rate-limited delivery waits locally up to this, else goes back
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
        ordered=claimed.ordered,
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
        proxy=parse_proxy(settings.webhook_proxy),
    )


def build_pool(settings: Settings) -> PublisherPool:
    """The process's broker publishers: one per subscription, hosts vetted like webhook ones."""
    return PublisherPool(
        allow=parse_allow_cidrs(settings.webhook_allow_cidrs),
        timeout=settings.webhook_timeout_seconds,
    )


def observe_subscription(subscription_id: str, result: SendResult) -> None:
    """The per-subscription series (CAUSEFLOW_METRICS_PER_SUBSCRIPTION)."""
    ok = result.ok
    SUBSCRIPTION_ATTEMPTS.labels(subscription_id, "succeeded" if ok else "failed").inc()
    SUBSCRIPTION_ATTEMPT_LATENCY.labels(subscription_id).observe(result.latency_ms / 1000)


class DeliveryEngine:
    """One process's delivery engine, composed of its parts: the claimer (intake), the lanes
    (admission and sending), the recorder (outcomes), the wake-ups and what it holds."""

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
        self.per_subscription = settings.metrics_per_subscription
        # No attempt outlives the request timeout, so waiting longer than it is pointless.
        self.grace_seconds = min(grace_seconds, settings.webhook_timeout_seconds + 0.1)
        # One cache per process, shared with the dispatcher and the API (which invalidates it).
        self.subs: SubscriptionCache = subscription_cache(ctx)
        self.sender = sender
        self._own_sender = sender is None
        self.pool = build_pool(settings)
        # the sender (with certificates and auth) or the pool, by destination type; at start
        self.deliverer: Deliverer | None = None
        self.rng = rng or random.Random()
        self.attempted = 0  # attempts made since start
        capacity = max(1, settings.webhook_max_inflight)
        batch_size = max(1, batch_size)
        self.wakeups = Wakeups()
        # Below `min_claim` free slots a claim waits for attempts to finish: no tiny batches.
        self.holding = Holding(
            capacity, min_claim=max(1, min(capacity, batch_size) // 4), wake=self.wakeups.wake
        )
        self.recorder = Recorder(
            self.db,
            ctx.clock,
            owner=self.owner,
            disable_after_ms=int(settings.webhook_disable_after_seconds * 1000),
            subs=self.subs,
            wake_in=self.wakeups.wake_in,
            wake=self.wakeups.wake,
        )
        self.lanes = self._lanes(settings)
        self.cluster = self.lanes.cluster
        self.claimer = Claimer(
            self.db,
            ctx.clock,
            owner=self.owner,
            lease_ms=int(settings.webhook_lease_seconds * 1000),
            poll_seconds=max(0.01, settings.webhook_poll_seconds),
            batch_size=batch_size,
            subs=self.subs,
            holding=self.holding,
            lanes=self.lanes,
            recorder=self.recorder,
            wakeups=self.wakeups,
        )
        self._wakers: list[Callable[[], None]] | None = None

    def _lanes(self, settings: Settings) -> Lanes:
        # A claimed delivery must start early enough that even an attempt running into the
        # timeout ends inside its lease; later than `start_by` after the claim it goes back.
        # Waiting locally is allowed for half of that margin (estimated from recent attempts).
        margin = max(0.0, settings.webhook_lease_seconds - settings.webhook_timeout_seconds)
        start_by = margin * 0.8
        # A rate-limited delivery waits locally for its slot up to this, well before start_by.
        rate_hold = min(RATE_HOLD_SECONDS, start_by / 2)
        cluster: ClusterFactory | None = None
        if self.db.dialect.shared_limits:
            # Several processes deliver (PostgreSQL): the per-host cap and the rates are kept
            # in the database so that they hold for the whole deployment, not per process.
            cluster = functools.partial(
                ClusterLimits,
                self.db,
                self.ctx.clock,
                owner=self.owner,
                cap=settings.webhook_max_inflight_per_host,
                lease_seconds=settings.webhook_lease_seconds,
                attempt_seconds=settings.webhook_timeout_seconds + 0.5,
                hold_seconds=rate_hold,
            )
        return Lanes(
            self.ctx.clock,
            holding=self.holding,
            recorder=self.recorder,
            wakeups=self.wakeups,
            hosts=HostGate(settings.webhook_max_inflight_per_host),
            waits=QueueBudget(margin * 0.5),
            start_by=start_by,
            rate_hold=rate_hold,
            attempt=self._attempt,
            cluster=cluster,
        )

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self.sender is None:
            self.sender = build_sender(self.ctx.settings)
        await self.sender.start()
        egress = Egress(self.sender, cafile=self.ctx.settings.webhook_ca_file)
        self.deliverer = Deliverer(egress, self.pool)
        self.lanes.start()
        self._connect()
        self.recorder.start()
        self.claimer.start()
        self.wakeups.wake()

    async def stop(self) -> None:
        """Stop claiming, let attempts finish for the grace, hand back the rest, then return."""
        if self.holding.stopping:
            return
        self.holding.stop()
        self._disconnect()
        self.wakeups.stop()
        await self.claimer.stop(STOP_DB_SECONDS)
        # A dispatch batch leasing to us may still be committing: let it hand its deliveries
        # over (they go back at once, below) while the flush loop still runs.
        await self.holding.until_handed_over(STOP_DB_SECONDS)
        # Not started yet: back to the queue at once, for another worker.
        await self.lanes.stop(self.grace_seconds)
        await self.recorder.close(STOP_DB_SECONDS)
        await self._release_all()
        await self.pool.close()
        if self.sender is not None and self._own_sender:
            await self.sender.close()

    def _connect(self) -> None:
        """Be woken by the dispatcher and the broker; take the dispatcher's fresh deliveries."""
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
        # over after its commit (`Claimer.accept`); with several engines (tests) the first one.
        if self.ctx.local_engine is None:
            self.ctx.local_engine = self.claimer

    def _disconnect(self) -> None:
        if self.ctx.local_engine is self.claimer:
            self.ctx.local_engine = None
        self.ctx.broker.remove_listener(self.wakeups.on_broker)
        if self._wakers is not None:
            with contextlib.suppress(ValueError):
                self._wakers.remove(self.wakeups.work_added)

    async def _release_all(self) -> None:
        """Anything still leased to us (an unrecorded outcome, a failed hand-back) is due again
        at once, and the host slots are free; a crash skips this and the leases run out."""
        try:
            await queue.release_all(self.db, owner=self.owner)
        except Exception:
            log.exception("could not release leases on shutdown; they expire by themselves")
        if self.cluster is not None:
            try:
                await self.cluster.release_all()
            except Exception:
                log.exception("could not release host slots on shutdown; they expire by themselves")

    def wake(self) -> None:
        """New work may be due: claim soon (cheap, coalesced, callable from any callback)."""
        self.wakeups.wake()

    # --- sending ----------------------------------------------------------------------------

    async def _attempt(self, job: Job) -> Job | None:
        """Send `job` and push its outcome; the next of its ordered run to send, if any."""
        claimed, sub = job.claimed, job.sub
        assert self.deliverer is not None
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
                subscription_id=claimed.subscription_id,
                sequence=claimed.sequence,
            )
            with spans.attempt(
                claimed.event_id,
                delivery_id=claimed.id,
                subscription_id=claimed.subscription_id,
                attempt_number=claimed.attempts + 1,
            ) as span:
                span.inject(headers)  # tracing on: the receiver may join the event's trace
                result = await self.deliverer.send(sub, job.body, headers)
                span.answered(result.status, result.error)
        except asyncio.CancelledError:
            # Shutdown after the grace: the receiver may have it already; at-least-once.
            self.lanes.hand_back(job, None)
            raise
        except Exception as exc:  # a bug in building the request must not kill the engine
            log.exception("delivery %s could not be sent", claimed.id)
            result = SendResult(None, 0.0, b"", f"invalid_request: {exc}"[:500])
        self.lanes.waits.observe(job.origin, result.latency_ms / 1000)
        self.attempted += 1
        ATTEMPT_LATENCY.observe(result.latency_ms / 1000)
        if self.per_subscription:
            observe_subscription(claimed.subscription_id, result)
        outcome = decide(
            claimed,
            result,
            schedule=self.schedule,
            rng=self.rng,
            now_ms=self.ctx.clock.now_ms(),
            url=sub.url,
        )
        COUNT["retrying" if outcome.status == "pending" else outcome.status].inc()
        run = bool(job.follow)
        goes_on = run and outcome.status == "succeeded" and not self.holding.stopping
        # Pipelined: the next of a run is sent at once, its predecessors' outcomes are written
        # behind it. Only the last of a run wakes the claim loop (the lane's next delivery
        # waits for its record) and is written without waiting for company.
        outcome.ordered = claimed.ordered and not goes_on
        self.recorder.push(outcome, urgent=outcome.ordered, lazy=goes_on)
        self.holding.done()
        if goes_on:
            return self._follow_run(job)
        if run:
            self.lanes.hand_back_run(job)  # behind a failure (or on shutdown)
        return None

    def _follow_run(self, job: Job) -> Job | None:
        """The next of an ordered head's run to send in this slot (all before it succeeded),
        if it can still start inside its lease; otherwise the run goes back behind the head."""
        follower = job.follow[0]
        follower.follow = job.follow[1:]
        job.follow = []
        if asyncio.get_running_loop().time() - follower.claimed_at > self.lanes.start_by:
            self.lanes.end_run(follower)
            return None
        return follower

    def snapshot(self) -> dict[str, Any]:
        """Counters for tests and debugging."""
        return {
            "owner": self.owner,
            "attempted": self.attempted,
            "held": self.holding.held,
            **self.lanes.snapshot(),
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

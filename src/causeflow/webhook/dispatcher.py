"""The dispatcher: follows each tenant's log with a durable cursor and creates its deliveries.

Emitters know nothing of subscriptions: they append to the log, and this loop turns each event
into one delivery per matching subscription. A batch's deliveries and the cursor's advance
commit in one transaction, so a crash neither skips nor repeats an event. Two dispatchers
(PostgreSQL, several worker processes) may read the same batch, but the cursor moves by
compare-and-set (`UPDATE … WHERE position = old`): the second's UPDATE waits on the row lock,
then matches nothing, and it rolls back its copy. Woken by the broker; a slow poll is the net.
Each event is matched by the subscription's rules in force when the event was committed (the
versions a subscription keeps, `Subscription.version_at`), however late it is dispatched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from causeflow.context import AppContext, LocalEngine
from causeflow.db.engine import Tx
from causeflow.event.log import page_after
from causeflow.jsonutil import loads
from causeflow.runtime import Component, Stop
from causeflow.tracing import spans
from causeflow.webhook import repository as repo
from causeflow.webhook.filters import lane_of
from causeflow.webhook.queue import Claimed
from causeflow.webhook.service import delivery_row
from causeflow.webhook.subscriptions import (
    Subscription,
    SubscriptionCache,
    rules_match,
    subscription_cache,
)

log = logging.getLogger("causeflow.dispatcher")

BATCH_SIZE = 256  # events per batch at most ...
MAX_DELIVERIES = 128  # ... and about this many deliveries (events x live subscriptions)
ROOM_WAIT_SECONDS = 0.05  # longest wait for that engine to have room before a batch
# A tenant without subscriptions has nothing to deliver: its cursor only follows the head, and
# one round per this many seconds does that, however many commits came between.
QUIET_SECONDS = 0.05


def wake_deliveries(ctx: AppContext) -> None:
    """Tell this process's delivery workers that deliveries became due (no-op without them)."""
    wakeup = ctx.delivery_wakeup
    if wakeup is not None:
        wakeup()


@dataclass(frozen=True)
class BatchResult:
    events: int  # events examined
    deliveries: int  # deliveries created
    more: bool  # the log may hold more for this tenant right now


class _CursorMoved(Exception):
    """Another dispatcher committed this batch first."""


def plan_deliveries(
    tenant_id: str, events: list[Any], subs: list[Subscription], now_ms: int
) -> list[dict[str, Any]]:
    """The delivery rows for a batch of log rows (id, position, type, envelope). Pure.

    An event beyond a subscription's `from_position` is matched by its current rules; one at or
    before it by the earlier version in force at the event's position, if any (none: the
    subscription did not exist yet). Each envelope is decoded once, and only if some
    subscription wants the type.
    """
    rows: list[dict[str, Any]] = []
    wanted: set[str] = set()
    for sub in subs:
        wanted |= sub.all_types()
    every = "*" in wanted
    for ev in events:
        if not every and ev.type not in wanted:
            continue
        data: dict[str, Any] | None = None
        for sub in subs:
            if ev.position > sub.from_position:
                if not sub.wants_type(ev.type):
                    continue
                event_set, filter_, enabled = sub._event_set, sub.filter, sub.enabled
            else:
                rules = sub.version_at(ev.position) if sub.history else None
                if rules is None or not rules.wants_type(ev.type):
                    continue
                # attempted only if it is enabled now too, as the engine treats a delivery
                # that comes due while its subscription is disabled
                event_set, filter_ = rules._event_set, rules.filter
                enabled = rules.enabled and sub.enabled
            if data is None:
                data = loads(ev.envelope).get("data") or {}
            if rules_match(sub.id, event_set, filter_, ev.type, data):
                row = delivery_row(
                    tenant_id=tenant_id,
                    subscription_id=sub.id,
                    event_id=ev.id,
                    event_type=ev.type,
                    enabled=enabled,
                    now_ms=now_ms,
                )
                if sub.ordered:
                    row["ordered"] = True
                    row["ordering_key"] = (
                        lane_of(data, sub.ordering_key) if sub.ordering_key else None
                    )
                rows.append(row)
    return rows


async def dispatch_batch(
    ctx: AppContext, cache: SubscriptionCache, tenant_id: str, limit: int = BATCH_SIZE
) -> BatchResult:
    """Dispatch the next batch of one tenant's log after its cursor, in one transaction."""
    commit = asyncio.ensure_future(_dispatch(ctx, cache, tenant_id, limit))
    # Shielded: cancelling the loop (shutdown) never interrupts the transaction half-way,
    # which on SQLite could leave the single writer connection holding its lock.
    commit.add_done_callback(_retrieve)
    return await asyncio.shield(commit)


async def _dispatch(
    ctx: AppContext, cache: SubscriptionCache, tenant_id: str, limit: int
) -> BatchResult:
    """Read, plan and write a batch inside one write transaction.

    The reads run on the writer's connection: on SQLite that is the group commit's synchronous
    connection in the loop's thread (microseconds, no hop to a reader thread) and nothing can
    change under them; on PostgreSQL the cursor's compare-and-set still decides which of two
    dispatchers lands a batch. When this process runs a delivery engine with room, the new
    deliveries are written already leased to it and handed over after the commit, so a fresh
    delivery needs no separate claim (the row is committed before it is sent, and a crash
    leaves a lease that runs out as any claim's does).
    """
    engine: LocalEngine | None = ctx.local_engine
    if engine is not None:
        # Under a burst, wait a moment for room rather than write rows the engine must then
        # claim and read back; never long, so the log is never held up behind a full engine.
        await engine.wait_for_room(ROOM_WAIT_SECONDS)
    reserved = 0
    try:
        async with ctx.db.transaction() as tx:
            stored = await repo.read_cursor(tx, tenant_id)
            cursor, generation = stored or (0, 0)
            head, subs = await cache.dispatch_set(tx, tenant_id)
            if head <= cursor:
                return BatchResult(0, 0, False)
            live = [s for s in subs if s.first_position < head]
            events, full = await _next_events(tx, tenant_id, cursor, head, limit, live, engine)
            new_cursor = events[-1].position if full else head
            now_ms = ctx.clock.now_ms()
            rows = plan_deliveries(tenant_id, events, live, now_ms)
            # an ordered delivery is claimed when it is its lane's head, never handed over
            pending = [r for r in rows if r["status"] == "pending" and not r["ordered"]]
            waiting = any(r["status"] == "pending" and r["ordered"] for r in rows)
            if engine is not None and pending:
                reserved, leased_at = _lease(engine, pending, now_ms)
            await _write_batch(tx, tenant_id, stored is None, cursor, new_cursor, rows, generation)
            if reserved:
                assert engine is not None
                handed = _handoff(pending[:reserved], events, live)
                tx.after_commit(lambda: engine.accept(handed, leased_at))
            if len(pending) > reserved or waiting:
                tx.after_commit(lambda: wake_deliveries(ctx))
    except _CursorMoved:
        if engine is not None:
            engine.unreserve(reserved)
        return BatchResult(0, 0, True)  # another dispatcher committed this batch first
    except BaseException:
        if engine is not None:
            engine.unreserve(reserved)
        raise
    return BatchResult(len(events), len(rows), full)


async def _next_events(
    tx: Tx,
    tenant_id: str,
    cursor: int,
    head: int,
    limit: int,
    live: list[Subscription],
    engine: LocalEngine | None,
) -> tuple[list[Any], bool]:
    """The events of the batch after `cursor` (see `_read_events`), and whether there are more
    before `head`."""
    # No subscription wants an event at or before the lowest first position: skip those.
    start = max(cursor, min((s.first_position for s in live), default=head))
    if start >= head:
        return [], False
    # as many as the local engine has room for, when it has room (all leased)
    room = engine.room() if engine is not None else 0
    budget = min(MAX_DELIVERIES, room) if room > 0 else MAX_DELIVERIES
    return await _read_events(tx, tenant_id, start, head, limit, live, budget)


def _lease(engine: LocalEngine, pending: list[dict[str, Any]], now_ms: int) -> tuple[int, float]:
    """Reserve room in `engine` for the pending rows and write as many as fit leased to it;
    returns how many, and the loop time the leases run from."""
    reserved = engine.reserve(len(pending))
    leased_at = asyncio.get_running_loop().time()
    for row in pending[:reserved]:
        row["lease_owner"] = engine.owner
        row["lease_until"] = now_ms + engine.lease_ms
    return reserved, leased_at


async def _read_events(
    tx: Tx,
    tenant_id: str,
    start: int,
    head: int,
    limit: int,
    subs: list[Subscription],
    budget: int,
) -> tuple[list[Any], bool]:
    """Up to `limit` events after `start`, fewer once `budget` deliveries could come of them.

    A batch stays small enough that it never holds the loop (SQLite writes run in it) for
    more than a millisecond or two. Rows are fetched as they are taken (SQLite's cursor is
    lazy); returns the events and whether the log may hold more before `head`.
    """
    fanout: dict[str, int] = {}
    every = 0
    for sub in subs:
        types = sub.all_types()  # every version's: an over-estimate at worst
        if "*" in types:
            every += 1
        else:
            for event_type in types:
                fanout[event_type] = fanout.get(event_type, 0) + 1
    taken: list[Any] = []
    result = await page_after(tx, tenant_id, start, head, limit)
    more = False
    for ev in result:
        cost = every + fanout.get(ev.type, 0)  # at most this many deliveries (filters)
        if taken and cost > budget:
            more = True
            break
        taken.append(ev)
        budget -= cost
    result.close()
    return taken, more or len(taken) == limit


def _handoff(
    rows: list[dict[str, Any]], events: list[Any], subs: list[Subscription]
) -> list[tuple[Claimed, Subscription, bytes]]:
    """What the local engine needs to send freshly leased deliveries without reading them."""
    bodies: dict[str, bytes] = {}
    for ev in events:
        bodies[ev.id] = ev.envelope.encode()
        spans.remember(ev.id, ev.traceparent)
    by_id = {s.id: s for s in subs}
    return [
        (
            Claimed(
                r["id"],
                r["tenant_id"],
                r["subscription_id"],
                r["event_id"],
                r["event_type"],
                0,
                False,
                None,
                r["next_attempt_at"],
                r["sequence"],
            ),
            by_id[r["subscription_id"]],
            bodies[r["event_id"]],
        )
        for r in rows
    ]


async def _write_batch(
    tx: Tx,
    tenant_id: str,
    new: bool,
    cursor: int,
    new_cursor: int,
    rows: list[dict[str, Any]],
    generation: int,
) -> None:
    """The cursor's compare-and-set, then the deliveries; `_CursorMoved` if another batch won
    or a subscription delete came in between (the generation moved)."""
    if new:
        await repo.ensure_cursor(tx, tenant_id)
    if not await repo.advance_cursor(tx, tenant_id, cursor, new_cursor, generation):
        raise _CursorMoved
    await number_deliveries(tx, tenant_id, rows)
    await repo.insert_deliveries(tx, rows)


async def number_deliveries(tx: Tx, tenant_id: str, rows: list[dict[str, Any]]) -> None:
    """Give each row its subscription's next sequence number, in the rows' (log) order.

    Runs after the cursor's compare-and-set: see `repo.take_sequences`."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["subscription_id"]] = counts.get(row["subscription_id"], 0) + 1
    first = await repo.take_sequences(tx, tenant_id, counts)
    for row in rows:
        sub_id = row["subscription_id"]
        row["sequence"] = first[sub_id]
        first[sub_id] += 1


def _retrieve(task: asyncio.Future[Any]) -> None:
    # A shielded commit whose caller was cancelled has nobody awaiting its outcome; a failure
    # there rolled back and the next dispatch redoes the batch, so it is only noted.
    if not task.cancelled() and task.exception() is not None:
        log.debug("a dispatch batch failed: %s", task.exception())


class Dispatcher:
    """The long-running loop of one process: tenants to visit, a wake-up, a slow poll."""

    def __init__(self, ctx: AppContext, batch_size: int = BATCH_SIZE) -> None:
        self.ctx = ctx
        self.cache = subscription_cache(ctx)
        self.batch_size = batch_size
        # insertion-ordered set: a tenant with a backlog goes to the back after each batch
        self._dirty: dict[str, None] = {}
        # tenants without subscriptions: when their last round ran (loop time), and those
        # waiting for the next one (`QUIET_SECONDS`)
        self._quiet_round: dict[str, float] = {}
        self._deferred: dict[str, None] = {}
        self._scan_all = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self, tenant_id: str) -> None:
        """Broker listener: this tenant ("*": any tenant) may have new events."""
        if tenant_id == "*":
            self._scan_all = True
        else:
            self._dirty[tenant_id] = None
        self._wake.set()

    async def start(self) -> None:
        self.ctx.broker.add_listener(self.notify)
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self, timeout: float = 5.0) -> None:
        """Finish the batch in hand and exit; cancel after `timeout` seconds (0: at once)."""
        self.ctx.broker.remove_listener(self.notify)
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        poll = self.ctx.settings.webhook_poll_seconds
        loop = asyncio.get_running_loop()
        idle = 0.0  # seconds waited without a wake-up since the last one
        while not self._stopping:
            # Cleared before the work, so a commit during it leaves the event set.
            self._wake.clear()
            try:
                await self._drain()
            except Exception:
                log.exception("dispatching failed; retrying after the poll interval")
                self._scan_all = True
            if self._stopping:
                return
            timeout = poll - idle
            if self._deferred:  # until the first of their windows ends
                due = min(self._quiet_round.get(t, 0.0) for t in self._deferred) + QUIET_SECONDS
                timeout = max(0.0, min(timeout, due - loop.time()))
            waited_from = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            if self._wake.is_set():
                idle = 0.0
                continue
            idle += loop.time() - waited_from
            if idle >= poll:
                idle = 0.0
                self._scan_all = True  # the slow poll: look for any tenant left behind

    async def _drain(self) -> None:
        if self._scan_all:
            self._scan_all = False
            async with self.ctx.db.read() as conn:
                for tenant_id in await repo.tenants_behind(conn):
                    self._dirty[tenant_id] = None
        self._dirty.update(self._deferred)
        self._deferred.clear()
        while self._dirty and not self._stopping:
            tenant_id = next(iter(self._dirty))
            del self._dirty[tenant_id]
            if self._later(tenant_id):
                continue
            result = await dispatch_batch(self.ctx, self.cache, tenant_id, self.batch_size)
            if result.more:
                self._dirty[tenant_id] = None

    def _later(self, tenant_id: str) -> bool:
        """Put off a round for a tenant without subscriptions whose last round ran less than
        `QUIET_SECONDS` ago. Its cursor stays where it is meanwhile, so nothing is skipped: a
        subscription made in another process meanwhile gets the tenant's next events at most
        that much later (one made here drops the cached set, and its tenant is not put off)."""
        if self.cache.known_without(tenant_id):
            now = asyncio.get_running_loop().time()
            last = self._quiet_round.get(tenant_id)
            if last is not None and now - last < QUIET_SECONDS:
                self._deferred[tenant_id] = None
                return True
            self._quiet_round[tenant_id] = now
        else:
            self._quiet_round.pop(tenant_id, None)
        # Its round runs now, also when it was held back earlier in this drain and a change
        # (a subscription made here) or a wake-up brought it back since.
        self._deferred.pop(tenant_id, None)
        return False


async def start_dispatcher(ctx: AppContext) -> Stop:
    dispatcher = Dispatcher(ctx)
    ctx.dispatcher = dispatcher
    await dispatcher.start()
    return dispatcher.stop


def component() -> Component:
    return Component("webhook-dispatcher", frozenset({"worker"}), start_dispatcher)

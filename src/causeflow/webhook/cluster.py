"""Delivery limits shared by several worker processes (PostgreSQL): per-host slots and rates.

With one process (SQLite) the engine's own counters keep a receiver's limits exactly
(`webhook/limits.py`). With M processes each would grant the receiver M times its rate and M
times the per-host cap, so both live in the database instead, in a way that costs little on the
common path:

- **Per-host in-flight cap.** Each origin has `cap` numbered rows in `host_slots`, leased like
  deliveries (`owner`, `lease_until`). A process takes slots in a batch when it has deliveries
  waiting for that host (one UPDATE over the free rows, `FOR UPDATE SKIP LOCKED`), and a lane
  keeps its slot while it sends one delivery after another, so under load a slot costs one
  round trip per lane, not per attempt. A slot with nothing to do is kept `SLOT_LINGER_SECONDS`
  in case more work comes, then released. Leases are renewed together every quarter lease; a
  process killed with -9 stops renewing and its slots are free again when the lease runs out.
  A slot is used for an attempt only while its lease outlasts the attempt (request timeout),
  so no two processes ever hold one slot at once. A process that wants more slots of a host
  than it holds says so in `host_wants` (renewed while it does, forgotten a second after it
  stops); holders look at that every `CHECK_SECONDS` while they hold slots and keep no more
  than their share (the cap divided among the processes wanting slots, rounded up): idle slots
  go at once, busy ones after their current attempt. So every process with work for a host
  sends some of it, instead of parking it until the one holding every slot is done.
- **Per-subscription rate.** Starts are spaced 1/rate apart on one schedule per subscription
  (`rate_slots.next_at`): a process reserves the slots of all its waiting deliveries of that
  subscription with one atomic upsert (`… ON CONFLICT DO UPDATE … RETURNING`), never further
  ahead than the engine may hold a lease idle; a delivery starts at its slot and at most
  `rate_tolerance` after it, or takes a new one.

Everything a process needs from the database is collected and done in one transaction per
round (`ClusterLimits._round`): releases, renewals, acquisitions, wants, the look at who else
wants slots, reservations, in that order (its own rows first, rows others are taking skipped,
schedules in id order), so two processes' rounds never wait on each other in a cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    update,
)

from causeflow.clock import Clock
from causeflow.db.dialect import Dialect
from causeflow.db.engine import Database, Tx
from causeflow.db.prebuilt import prebuilt
from causeflow.webhook.limits import SlotBook, grant
from causeflow.webhook.tables import host_slots, host_wants, rate_slots

log = logging.getLogger("causeflow.webhook.cluster")

SLOT_LINGER_SECONDS = 0.2  # an idle slot is kept this long for more work, then released
SLOT_RETRY_SECONDS = (0.025, 0.25)  # a host with no free slot is asked again after this, doubling
CHECK_SECONDS = 0.25  # while holding or wanting slots, how often to look who else wants them
WANT_TTL_MS = 1000  # a want not renewed for this long is forgotten (its process died)
WANT_REFRESH_SECONDS = 0.3
MAX_ORIGINS = 10_000  # origins remembered as having their slot rows
IDLE_TICK_SECONDS = 0.05  # how often idle slots are looked at while there are any
# Start slots are reserved from this far ahead of the round's start, so that the first one is
# not already past when the round has committed (a start late by more than the rate's
# tolerance takes a new slot).
RATE_LEAD_SECONDS = 0.02
ERROR_BACKOFF_SECONDS = (0.05, 5.0)

_S = host_slots.c
_R = rate_slots.c

_OWNER = bindparam("b_owner", type_=Text)
_ORIGIN = bindparam("b_origin", type_=Text)
_NOW_MS = bindparam("b_now", type_=BigInteger)
_UNTIL = bindparam("b_until", type_=BigInteger)

_FREE = and_(
    _S.origin == _ORIGIN,
    _S.slot < bindparam("b_cap", type_=Integer),
    or_(_S.owner.is_(None), _S.lease_until <= _NOW_MS),
)
_FREE_SLOTS = select(_S.slot).where(_FREE).order_by(_S.slot).limit(bindparam("b_n", type_=Integer))
_RENEW = update(host_slots).where(_S.owner == _OWNER).values(lease_until=_UNTIL)
_RELEASE = (
    update(host_slots)
    .where(
        _S.origin == _ORIGIN,
        _S.slot == bindparam("b_slot", type_=Integer),
        _S.owner == _OWNER,
    )
    .values(owner=None, lease_until=None)
)
_RELEASE_ALL = update(host_slots).where(_S.owner == _OWNER).values(owner=None, lease_until=None)
_W = host_wants.c
_WITHDRAW = delete(host_wants).where(_W.origin == _ORIGIN, _W.owner == _OWNER)
_WITHDRAW_ALL = delete(host_wants).where(_W.owner == _OWNER)
_RIVALS = (
    select(_W.origin, func.count())
    .where(
        _W.origin.in_(bindparam("b_origins", expanding=True)),
        _W.owner != _OWNER,
        _W.until > _NOW_MS,
    )
    .group_by(_W.origin)
)


def _statement(db: Database, name: str) -> Any:
    """The statement `name`, built once per dialect (`db/prebuilt.py`)."""
    return _STATEMENTS[name](db.dialect)


def _build(dialect: Dialect, name: str) -> Any:
    if name == "seed":
        return dialect.insert_ignore(host_slots, ["origin", "slot"])
    if name == "acquire":
        # Free rows another process is taking this instant are skipped, not waited for.
        return (
            update(host_slots)
            .where(_S.origin == _ORIGIN, _S.slot.in_(dialect.skip_locked(_FREE_SLOTS)))
            .values(owner=_OWNER, lease_until=_UNTIL)
            .returning(_S.slot)
        )
    if name == "renew":
        return _RENEW.returning(_S.origin, _S.slot)
    if name == "want":
        insert = dialect.insert(host_wants).values(
            origin=_ORIGIN, owner=_OWNER, until=bindparam("b_until", type_=BigInteger)
        )
        return insert.on_conflict_do_update(
            index_elements=["origin", "owner"], set_={"until": insert.excluded.until}
        )
    if name == "reserve":
        # `grant` (webhook/limits.py) in SQL: the first slot is the schedule's next free one or
        # now; as many as wanted, `interval` apart, none after the horizon.
        now = bindparam("b_now_us", type_=BigInteger)
        interval = bindparam("b_interval", type_=BigInteger)
        end = bindparam("b_end", type_=BigInteger)
        wanted = bindparam("b_wanted", type_=BigInteger)
        first = dialect.greatest(_R.next_at, now)
        count = case((first > end, 0), else_=dialect.least(wanted, (end - first) // interval + 1))
        insert = dialect.insert(rate_slots).values(
            subscription_id=bindparam("b_sub", type_=Text),
            next_at=bindparam("b_fresh_next", type_=BigInteger),
            granted=bindparam("b_fresh_granted", type_=Integer),
        )
        return insert.on_conflict_do_update(
            index_elements=["subscription_id"],
            set_={"next_at": first + interval * count, "granted": count},
        ).returning(_R.next_at, _R.granted)
    raise KeyError(name)


_STATEMENTS: dict[str, prebuilt[Any]] = {
    name: prebuilt(functools.partial(_build, name=name))
    for name in ("seed", "acquire", "renew", "want", "reserve")
}


# --- the statements, one call each (also used by tests) ------------------------------------------


async def acquire_slots(
    tx: Tx, *, owner: str, origin: str, cap: int, wanted: int, now_ms: int, lease_ms: int
) -> list[int]:
    """Lease up to `wanted` free slots of `origin` (numbers below `cap`) to `owner`."""
    params = {
        "b_origin": origin,
        "b_cap": cap,
        "b_now": now_ms,
        "b_n": wanted,
        "b_owner": owner,
        "b_until": now_ms + lease_ms,
    }
    rows = await tx.execute(_statement(tx.db, "acquire"), params)
    return sorted(int(r.slot) for r in rows)


async def seed_slots(tx: Tx, origin: str, cap: int) -> None:
    """Make sure `origin` has its `cap` slot rows (free ones are added, none is changed)."""
    rows = [{"origin": origin, "slot": n, "owner": None, "lease_until": None} for n in range(cap)]
    await tx.execute(_statement(tx.db, "seed"), rows)


async def renew_slots(tx: Tx, *, owner: str, now_ms: int, lease_ms: int) -> set[tuple[str, int]]:
    """Extend every slot lease `owner` still holds; returns those slots."""
    rows = await tx.execute(
        _statement(tx.db, "renew"), {"b_owner": owner, "b_until": now_ms + lease_ms}
    )
    return {(r.origin, int(r.slot)) for r in rows}


async def release_slots(tx: Tx, *, owner: str, slots: Iterable[tuple[str, int]]) -> None:
    params = [{"b_origin": o, "b_slot": s, "b_owner": owner} for o, s in slots]
    if params:
        await tx.execute(_RELEASE, params)


async def release_all_slots(db: Database, *, owner: str) -> None:
    async with db.transaction() as tx:
        await tx.execute(_RELEASE_ALL, {"b_owner": owner})
        await tx.execute(_WITHDRAW_ALL, {"b_owner": owner})


async def declare_wants(tx: Tx, *, owner: str, origins: Iterable[str], until_ms: int) -> None:
    """`owner` wants more of these origins' slots than it holds, until `until_ms`."""
    params = [{"b_origin": o, "b_owner": owner, "b_until": until_ms} for o in origins]
    if params:
        await tx.execute(_statement(tx.db, "want"), params)


async def withdraw_wants(tx: Tx, *, owner: str, origins: Iterable[str]) -> None:
    params = [{"b_origin": o, "b_owner": owner} for o in origins]
    if params:
        await tx.execute(_WITHDRAW, params)


async def count_rivals(
    tx: Tx, *, owner: str, origins: Iterable[str], now_ms: int
) -> dict[str, int]:
    """How many other processes want more slots of each of `origins` now."""
    wanted = sorted(set(origins))
    if not wanted:
        return {}
    rows = await tx.execute(_RIVALS, {"b_origins": wanted, "b_owner": owner, "b_now": now_ms})
    return {r[0]: int(r[1]) for r in rows}


async def reserve_starts(
    tx: Tx, *, subscription_id: str, wanted: int, interval_us: int, now_us: int, horizon_us: int
) -> tuple[int, int]:
    """Reserve up to `wanted` start slots of a subscription's schedule, `interval_us` apart and
    none later than `horizon_us` from now; returns (first slot, how many), epoch microseconds.
    When none is granted, the first slot is when the next free one would be."""
    end = now_us + horizon_us
    first, count = grant(now_us, now_us, wanted, interval_us, end)  # a schedule seen first now
    params = {
        "b_sub": subscription_id,
        "b_fresh_next": first + count * interval_us,
        "b_fresh_granted": count,
        "b_now_us": now_us,
        "b_interval": interval_us,
        "b_end": end,
        "b_wanted": wanted,
    }
    row = (await tx.execute(_statement(tx.db, "reserve"), params)).one()
    granted = int(row.granted)
    return int(row.next_at) - granted * interval_us, granted


# --- the engine's side ---------------------------------------------------------------------------


@dataclass(slots=True)
class RateAsk:
    """Deliveries of one subscription waiting for start slots, oldest first."""

    interval_us: int
    jobs: list[Any]


@dataclass(slots=True)
class _Round:
    """One round: what it asks of the database, then (filled in) what it got."""

    now: float  # loop time
    now_ms: int  # wall clock, for leases
    now_us: int  # wall clock plus the lead, for start slots
    releases: list[tuple[str, int]]
    renew: bool
    asked: set[tuple[str, int]]  # the slots held when renewing
    acquire: dict[str, int]  # origin -> how many more slots
    check: bool  # look who else wants slots
    asks: dict[str, RateAsk]
    got: dict[str, list[int]] = field(default_factory=dict)
    starts: dict[str, tuple[int, int]] = field(default_factory=dict)
    kept: set[tuple[str, int]] = field(default_factory=set)
    declare: list[str] = field(default_factory=list)
    withdraw: list[str] = field(default_factory=list)
    rivals: dict[str, int] | None = None


class ClusterLimits:
    """One delivery engine's share of the cluster-wide limits.

    The engine asks synchronously (`want`, `ask`) and is called back after each round with
    what it got (`on_slots(origin)`, `on_start_slot(job, at_wall_seconds)`,
    `on_no_start_slot(job, next_wall_seconds)`); `take`/`usable`/`give_back` are the local,
    free part. A process that wants more of a host's slots than it holds says so in
    `host_wants`; every holder looks at that while it sends and keeps no more than its share
    (the cap divided among the processes that want slots, rounded up), so the slots move to
    where the work is instead of the work being handed around.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        owner: str,
        cap: int,
        lease_seconds: float,
        attempt_seconds: float,
        hold_seconds: float,
        demand: Callable[[str], int],
        on_slots: Callable[[str], None],
        on_start_slot: Callable[[Any, float], None],
        on_no_start_slot: Callable[[Any, float], None],
    ) -> None:
        self.db = db
        self.clock = clock
        self.owner = owner
        self.book = SlotBook(cap)
        self.cap = self.book.cap
        self.lease_seconds = lease_seconds
        self.lease_ms = int(lease_seconds * 1000)
        self.attempt_seconds = attempt_seconds
        self.hold_us = int(hold_seconds * 1_000_000)
        self.renew_every = max(0.05, lease_seconds / 4)
        self._demand = demand
        self._on_slots = on_slots
        self._on_start_slot = on_start_slot
        self._on_no_start_slot = on_no_start_slot
        self._wanted: set[str] = set()  # origins with deliveries waiting for a slot
        self._retry: dict[str, tuple[float, float]] = {}  # origin -> (not before, last delay)
        self._seeded: set[str] = set()
        self._asks: dict[str, RateAsk] = {}
        self._releases: list[tuple[str, int]] = []
        self._rivals: dict[str, int] = {}  # origin -> other processes wanting its slots
        self._declared: dict[str, float] = {}  # origins we said we want -> when we said it
        self._shed: dict[str, int] = {}  # origin -> busy slots to give up after their attempt
        self._renew_at = 0.0
        self._check_at = 0.0
        self._wake = asyncio.Event()
        self._next_round: asyncio.Event | None = None  # set when the next round has run
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.rounds = 0  # transactions run (tests, debugging)

    # --- the engine's calls -------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery-cluster-limits")

    def share(self, origin: str) -> int:
        """How many of `origin`'s slots this process may hold now."""
        return -(-self.cap // (1 + self._rivals.get(origin, 0)))

    def take(self, origin: str, now: float) -> int | None:
        """A held, idle slot of `origin` good for one more attempt (no round trip)."""
        return self.book.take(origin, now + self.attempt_seconds)

    def usable(self, origin: str, slot: int, now: float) -> bool:
        """May a lane send one more attempt with `slot`? Not if its lease could end during the
        attempt, nor if this process holds more than its share while others wait."""
        if not self.book.usable(origin, slot, now + self.attempt_seconds):
            return False
        shed = self._shed.get(origin, 0)
        if shed > 0:
            self._shed[origin] = shed - 1
            self.book.drop(origin, slot)
            self._releases.append((origin, slot))
            self._wake.set()
            return False
        return True

    def give_back(self, origin: str, slot: int, now: float) -> None:
        if self.book.holds(origin, slot):
            self.book.give_back(origin, slot, now, now + self.attempt_seconds)
        self._wake.set()  # to release it after the linger if nothing takes it

    def want(self, origin: str) -> None:
        """Deliveries wait for `origin` and no held slot is free: take more if allowed."""
        if origin not in self._wanted:
            self._wanted.add(origin)
            self._wake.set()

    def ask(self, job: Any, interval_us: int) -> None:
        """A start slot for `job` on its subscription's schedule (`on_start_slot` later)."""
        sid = job.sub.id
        pending = self._asks.get(sid)
        if pending is None:
            self._asks[sid] = RateAsk(interval_us, [job])
        else:
            pending.jobs.append(job)
        self._wake.set()

    async def settled(self, timeout: float = 1.0) -> None:
        """Return once slots wanted now have been asked for (a round starting after this call
        has run), or after `timeout`; at once if nothing is wanted."""
        if not self._wanted or self._task is None or self._task.done():
            return
        if self._next_round is None:
            self._next_round = asyncio.Event()
        done = self._next_round
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)

    async def stop(self) -> list[Any]:
        """Stop the rounds (the one under way finishes); returns the jobs still waiting for a
        start slot, for the engine to hand back."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        jobs = [job for ask in self._asks.values() for job in ask.jobs]
        self._asks.clear()
        return jobs

    async def release_all(self) -> None:
        """Shutdown: every slot back at once (a crash skips this; the leases run out)."""
        self.book.forget_all()
        await release_all_slots(self.db, owner=self.owner)

    def snapshot(self) -> dict[str, int]:
        return {
            "slots_held": self.book.count(),
            "slots_idle": self.book.idle_count(),
            "rate_asks": sum(len(a.jobs) for a in self._asks.values()),
        }

    # --- rounds -----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping:
            timeout = self._next_due(loop.time()) - loop.time()
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._stopping:
                break
            done, self._next_round = self._next_round, None
            try:
                await self._round()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("sharing delivery limits through the database failed")
                if done is not None:
                    done.set()
                    done = None
                low, high = ERROR_BACKOFF_SECONDS
                await asyncio.sleep(min(high, low * 2**failures))
            finally:
                if done is not None:
                    done.set()

    def _next_due(self, now: float) -> float:
        if self._asks or self._releases or self.book.lapsed:
            return now
        due = math.inf
        if self.book.count():
            due = min(self._renew_at, self._check_at)
        if self._declared:
            due = min(due, self._check_at)
        if self.book.idle_count():
            due = min(due, now + IDLE_TICK_SECONDS)
        for origin in self._wanted:
            due = min(due, self._retry.get(origin, (0.0, 0.0))[0])
        return due

    async def _round(self) -> None:
        """One transaction with everything this process needs from the others now."""
        r = self._plan()
        if r is None:
            return
        try:
            async with self.db.transaction() as tx:
                await self._exchange(tx, r)
        except BaseException:
            # Tried again next round: the releases, and the jobs in their order.
            self._releases[:0] = r.releases
            for sid, ask in r.asks.items():
                later = self._asks.get(sid)
                if later is not None:
                    ask.jobs.extend(later.jobs)
                self._asks[sid] = ask
            raise
        self.rounds += 1
        self._apply(r)

    def _plan(self) -> _Round | None:
        """What this round asks of the database (None: nothing)."""
        now = asyncio.get_running_loop().time()
        now_ms = self.clock.now_ms()
        now_us = int((self.clock.now() + RATE_LEAD_SECONDS) * 1_000_000)
        releases = (
            self._releases
            + self.book.take_lapsed()
            + self.book.idle_since(now - SLOT_LINGER_SECONDS)
        )
        self._releases = []
        renew = self.book.count() > 0 and now >= self._renew_at
        asked = self.book.held_slots() if renew else set()
        acquire = self._to_acquire(now)
        check = now >= self._check_at and bool(self.book.count() or self._declared)
        asks, self._asks = self._asks, {}
        if not (releases or renew or acquire or asks or check):
            return None
        return _Round(now, now_ms, now_us, releases, renew, asked, acquire, check, asks)

    def _to_acquire(self, now: float) -> dict[str, int]:
        """How many more slots of each wanted origin to take now (within share and demand)."""
        acquire: dict[str, int] = {}
        for origin in sorted(self._wanted):
            if self._retry.get(origin, (0.0, 0.0))[0] > now:
                continue
            count = min(self.share(origin), self.cap) - self.book.held(origin)
            count = min(count, self._demand(origin))
            if count > 0:
                acquire[origin] = count
            elif self._demand(origin) == 0:
                self._wanted.discard(origin)
            else:
                # at its share already: look again once we know more about the others
                _, last = self._retry.get(origin, (0.0, 0.0))
                self._retry[origin] = (max(now + SLOT_RETRY_SECONDS[0], self._check_at), last)
        return acquire

    async def _exchange(self, tx: Tx, r: _Round) -> None:
        """The round's statements, in order; what they return goes into `r`."""
        # Releases, renewals and wants touch only this process's own rows; acquisitions skip
        # rows others are taking; the schedules come last, in id order: no two rounds wait on
        # each other in a cycle.
        await release_slots(tx, owner=self.owner, slots=r.releases)
        if r.renew:
            r.kept = await renew_slots(
                tx, owner=self.owner, now_ms=r.now_ms, lease_ms=self.lease_ms
            )
        for origin, count in r.acquire.items():
            if origin not in self._seeded:
                await seed_slots(tx, origin, self.cap)
            r.got[origin] = await acquire_slots(
                tx,
                owner=self.owner,
                origin=origin,
                cap=self.cap,
                wanted=count,
                now_ms=r.now_ms,
                lease_ms=self.lease_ms,
            )
        # Say which hosts we want more of (renewed while we do), and stop saying it.
        r.declare, r.withdraw = self._want_changes(r.got, r.now)
        await declare_wants(
            tx, owner=self.owner, origins=r.declare, until_ms=r.now_ms + WANT_TTL_MS
        )
        await withdraw_wants(tx, owner=self.owner, origins=r.withdraw)
        if r.check:
            origins = self.book.origins() | self._wanted | set(self._declared)
            r.rivals = await count_rivals(tx, owner=self.owner, origins=origins, now_ms=r.now_ms)
        for sid in sorted(r.asks):
            ask = r.asks[sid]
            r.starts[sid] = await reserve_starts(
                tx,
                subscription_id=sid,
                wanted=len(ask.jobs),
                interval_us=ask.interval_us,
                now_us=r.now_us,
                horizon_us=self.hold_us,
            )

    def _want_changes(self, got: dict[str, list[int]], now: float) -> tuple[list[str], list[str]]:
        """The origins to say (again) that we want more of, and those to stop saying it for."""
        declare: list[str] = []
        withdraw: list[str] = []
        for origin in sorted(self._wanted | set(self._declared)):
            short = self._demand(origin) > self.book.held(origin) + len(got.get(origin, ()))
            if short and now - self._declared.get(origin, -math.inf) >= WANT_REFRESH_SECONDS:
                declare.append(origin)
            elif not short and origin in self._declared:
                withdraw.append(origin)
        return declare, withdraw

    def _apply(self, r: _Round) -> None:
        """The committed round's results, into the book and out to the engine."""
        now = r.now
        deadline = now + self.lease_seconds  # the leases were set from (about) this moment on
        if r.renew:
            self._renew_at = now + self.renew_every
            self.book.renewed(r.asked, r.kept, deadline)
        for origin in r.declare:
            self._declared[origin] = now
        for origin in r.withdraw:
            self._declared.pop(origin, None)
        if r.check:
            self._check_at = now + CHECK_SECONDS
            assert r.rivals is not None
            self._rivals = r.rivals
            self._give_up_excess()
        if len(self._seeded) > MAX_ORIGINS:
            self._seeded.clear()  # seeding again is harmless (rows that exist are left alone)
        for origin in [o for o in self._retry if o not in self._wanted]:
            del self._retry[origin]
        for origin, slots in r.got.items():
            self._got_slots(origin, slots, now, deadline)
        for sid, (first_us, count) in r.starts.items():
            ask = r.asks[sid]
            for i, job in enumerate(ask.jobs):
                if i < count:
                    self._on_start_slot(job, (first_us + i * ask.interval_us) / 1_000_000)
                else:
                    self._on_no_start_slot(job, (first_us + count * ask.interval_us) / 1_000_000)

    def _got_slots(self, origin: str, slots: list[int], now: float, deadline: float) -> None:
        """An acquisition's answer: slots to use (the engine opens lanes), or none (ask again
        later, backing off)."""
        self._seeded.add(origin)
        if slots:
            self._retry.pop(origin, None)
            self.book.add(origin, slots, deadline, now)
            if self._renew_at < now:
                self._renew_at = now + self.renew_every
            if self._check_at < now:
                self._check_at = now + CHECK_SECONDS
        else:
            _, last = self._retry.get(origin, (0.0, 0.0))
            low, high = SLOT_RETRY_SECONDS
            delay = min(high, last * 2) if last else low
            self._retry[origin] = (now + delay, delay)
        if self._demand(origin) == 0:
            self._wanted.discard(origin)
        if slots:
            self._on_slots(origin)

    def _give_up_excess(self) -> None:
        """Hold no more than the share: idle slots go at once, busy ones after their attempt."""
        self._shed.clear()
        for origin in self.book.origins():
            excess = self.book.held(origin) - self.share(origin)
            if excess <= 0:
                continue
            for slot in self.book.pop_idle(origin, excess):
                self._releases.append((origin, slot))
                excess -= 1
            if excess > 0:
                self._shed[origin] = excess
        if self._releases:
            self._wake.set()

"""The delivery queue's SQL: claim due deliveries under a lease, hand leases back, record outcomes.

Written once for both databases. On PostgreSQL the claim locks its candidates with
`FOR UPDATE SKIP LOCKED`, so worker processes claiming at the same moment split the queue and
never hold one delivery twice; on SQLite the single writer makes the same UPDATE atomic. Every
write after a claim is guarded by `lease_owner = :owner`: a worker whose lease ran out and was
taken over cannot overwrite the new owner's work. Times are epoch milliseconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Text,
    and_,
    bindparam,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    update,
)

from causeflow import ids
from causeflow.db.dialect import Dialect
from causeflow.db.engine import Database, Tx, rows_changed
from causeflow.db.prebuilt import prebuilt
from causeflow.event.log import append_event, envelopes_of, traceparents_of
from causeflow.tracing import spans
from causeflow.webhook.outcome import (
    CLEAR_FAILURE,  # noqa: F401 (re-exported: the effects an Outcome carries)
    EVENT_DISABLED,
    EVENT_EXHAUSTED,
    EXHAUSTED,
    GONE,
    SubscriptionState,
    subscription_step,
)
from causeflow.webhook.subscriptions import end_rules
from causeflow.webhook.tables import PENDING, attempts, deliveries, subscriptions

_D = deliveries.c


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this worker holds the lease of."""

    id: str
    tenant_id: str
    subscription_id: str
    event_id: str
    event_type: str
    attempts: int
    manual: bool
    payload: str | None  # the envelope of a test delivery (not in the log); None otherwise
    next_attempt_at: int
    sequence: int | None = None  # the k-th match of its subscription; None: test, replay
    ordered: bool = False  # the next one of its lane waits for this one's outcome
    ordering_key: str | None = None
    # an ordered head's run: the following deliveries of its lane, leased with it, in order
    run: tuple[Claimed, ...] = ()


@dataclass(slots=True)
class Outcome:
    """What one claimed delivery comes to; `attempted` ones also get an `attempts` row."""

    delivery_id: str
    tenant_id: str
    subscription_id: str
    event_id: str
    status: str  # the delivery's new status: pending | succeeded | failed | cancelled
    now_ms: int
    attempted: bool = False
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = None  # the attempt's error
    response_body: str | None = None
    last_error: str | None = None  # the delivery's
    next_attempt_at: int | None = None  # only while pending
    attempts: int = 0  # the delivery's attempt count after this outcome
    effect: str | None = None  # CLEAR_FAILURE | GONE | EXHAUSTED
    url: str = ""  # the subscription's url, for the operational events
    ordered: bool = False  # recording it may make the next delivery of its lane claimable


@dataclass(slots=True)
class Recorded:
    applied: int = 0  # outcomes applied (the lease was still ours)
    changed_subscriptions: set[tuple[str, str]] = field(default_factory=set)  # (tenant, id)
    disabled: list[str] = field(default_factory=list)  # subscription ids disabled now
    events: int = 0  # operational events appended


# Due: still to be sent, its time has come (retries wait here for their step), and nobody
# holds it: never leased, handed back, or the holder died and the lease ran out (it outlasts
# the request timeout, so a live holder never loses it). Built once, as every statement the
# engine runs over and over: building and hashing one costs more than SQLite running it.
_NOW = bindparam("b_now", type_=BigInteger)
# An ordered delivery is its lane's head: no delivery of the same subscription (and the same
# ordering key value) with a lower sequence is pending, leased or waiting for its retry. A
# manual retry of a finished one is a deliberate re-send: it neither waits nor blocks.
_E = deliveries.alias("earlier")
_EARLIER_PENDING = (
    select(_E.c.id)
    .where(
        _E.c.subscription_id == _D.subscription_id,
        _E.c.status == literal_column("'pending'"),  # ix_deliveries_pending_subscription
        _E.c.sequence < _D.sequence,
        _E.c.manual == false(),
        or_(
            _E.c.ordering_key == _D.ordering_key,
            and_(_E.c.ordering_key.is_(None), _D.ordering_key.is_(None)),
        ),
    )
    .correlate(deliveries)
)
_HEAD = or_(_D.ordered == false(), _D.manual == true(), ~exists(_EARLIER_PENDING))
_DUE = and_(
    PENDING,  # a literal: ix_deliveries_pending serves this
    _D.next_attempt_at <= _NOW,
    or_(_D.lease_until.is_(None), _D.lease_until <= _NOW),
    _HEAD,
)
_ANY_DUE = select(_D.id).where(_DUE).limit(1)
# ix_deliveries_pending (next_attempt_at) yields the candidates in this order, no sort
_CANDIDATES = select(_D.id).where(_DUE).order_by(_D.next_attempt_at).limit(bindparam("b_limit"))
_CLAIM_RETURNING = (
    _D.id,
    _D.tenant_id,
    _D.subscription_id,
    _D.event_id,
    _D.event_type,
    _D.attempts,
    _D.manual,
    _D.payload,
    _D.next_attempt_at,
    _D.sequence,
    _D.ordered,
    _D.ordering_key,
)


def _build_claim(dialect: Dialect) -> Any:
    # PostgreSQL: lock the candidates, skipping rows another worker is claiming this instant,
    # so concurrent claims take disjoint batches instead of waiting on each other. SQLite: no
    # lock clause; the write transaction already excludes every other writer.
    candidates = dialect.skip_locked(_CANDIDATES)
    return (
        update(deliveries)
        .where(_D.id.in_(candidates))
        # the lease: ours until now + lease, after which anyone may claim it again
        .values(lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"))
        .returning(*_CLAIM_RETURNING)
    )


_CLAIM = prebuilt(_build_claim)


def _claim_statement(db: Database) -> Any:
    return _CLAIM(db.dialect)


async def any_due(db: Database, now_ms: int) -> bool:
    """A read-only look before claiming, so an idle wake-up never takes the write lock."""
    async with db.read() as conn:
        row = (await conn.execute(_ANY_DUE, {"b_now": now_ms})).first()
    return row is not None


def _claimed(r: Any) -> Claimed:
    return Claimed(
        r.id,
        r.tenant_id,
        r.subscription_id,
        r.event_id,
        r.event_type,
        int(r.attempts or 0),
        bool(r.manual),
        r.payload,
        int(r.next_attempt_at or 0),
        None if r.sequence is None else int(r.sequence),
        bool(r.ordered),
        r.ordering_key,
    )


# The deliveries after an ordered head in its lane, in sequence order (the pending index).
_LANE_AFTER = (
    select(*_CLAIM_RETURNING, _D.lease_until)
    .where(
        _D.subscription_id == bindparam("b_sub"),
        PENDING,
        _D.sequence > bindparam("b_seq", type_=BigInteger),
        or_(
            _D.ordering_key == bindparam("b_key"),
            and_(_D.ordering_key.is_(None), bindparam("b_key").is_(None)),
        ),
    )
    .order_by(_D.sequence)
    .limit(bindparam("b_limit"))
)
_LEASE_RUN = (
    update(deliveries)
    .where(_D.id.in_(bindparam("b_ids", expanding=True)), PENDING)
    .values(lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"))
)


async def _with_run(tx: Tx, head: Claimed, params: dict[str, Any], run: int) -> Claimed:
    """Lease the head's run too: the ordered deliveries that follow it in its lane, as long as
    each is due and held by nobody. No other worker can take them meanwhile: the head, still
    pending, blocks them (`_HEAD`); a manual retry neither blocks nor follows."""
    lane = {"b_sub": head.subscription_id, "b_seq": head.sequence, "b_key": head.ordering_key}
    rows = (await tx.execute(_LANE_AFTER, {**lane, "b_limit": run})).all()
    now = params["b_now"]
    taken: list[Claimed] = []
    for r in rows:
        if r.manual:
            continue
        if not r.ordered or r.next_attempt_at > now or (r.lease_until or 0) > now:
            break
        taken.append(_claimed(r))
    if not taken:
        return head
    await tx.execute(_LEASE_RUN, {**params, "b_ids": [c.id for c in taken]})
    return dataclasses.replace(head, run=tuple(taken))


async def claim_due(
    db: Database, *, owner: str, now_ms: int, lease_ms: int, limit: int, run: int = 0
) -> list[Claimed]:
    """Lease up to `limit` due deliveries to `owner`; oldest due first. With `run`, an ordered
    head also brings up to `run` deliveries that follow it (`Claimed.run`)."""
    params = {"b_now": now_ms, "b_limit": limit, "b_owner": owner, "b_until": now_ms + lease_ms}
    async with db.transaction() as tx:
        rows = (await tx.execute(_claim_statement(db), params)).all()
        claimed = [_claimed(r) for r in rows]
        if run > 0:
            claimed = [
                await _with_run(tx, c, params, run) if c.ordered and not c.manual else c
                for c in claimed
            ]
    # RETURNING has no order; send in due order, then id (creation) order: log order, best effort
    claimed.sort(key=lambda c: (c.next_attempt_at, c.id))
    return claimed


async def load_envelopes(db: Database, event_ids: Iterable[str]) -> dict[str, str]:
    """The stored envelope text of each event (events are immutable, so any snapshot will do)."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return {}
    async with db.read() as conn:
        if spans.enabled():  # the events' spans, for the attempts' spans to join
            spans.remember_all(await traceparents_of(conn, wanted))
        return await envelopes_of(conn, wanted)


async def release_all(db: Database, *, owner: str) -> int:
    """Hand back every lease `owner` still holds (shutdown): due again at once, for anyone."""
    stmt = (
        update(deliveries).where(_D.lease_owner == owner).values(lease_owner=None, lease_until=None)
    )
    async with db.transaction() as tx:
        return rows_changed(await tx.execute(stmt), 0)


# One statement per kind of write, executed once per batch with many parameter sets
# (executemany). Parameter names carry a `b_` prefix: SQLAlchemy reserves the column names.

_RELEASE = (
    update(deliveries)
    # only a lease we still hold
    .where(_D.id == bindparam("b_id"), _D.lease_owner == bindparam("b_owner"))
    .values(
        lease_owner=None,
        lease_until=None,
        # handed back for later (host full, rate limit): it stays out of the due set until
        # then; handed back on shutdown (NULL): due as it was
        next_attempt_at=func.coalesce(bindparam("b_next", type_=BigInteger), _D.next_attempt_at),
    )
)

_HELD = select(_D.id).where(
    _D.id.in_(bindparam("b_ids", expanding=True)), _D.lease_owner == bindparam("b_owner")
)

_END_LEASE: dict[str, Any] = {
    # a manual retry is one attempt; once it has an outcome the flag has done its job
    "manual": False,
    # the lease ends with the outcome: a pending retry is claimable when it is due again
    "lease_owner": None,
    "lease_until": None,
    "updated_at": bindparam("b_now", type_=BigInteger),
    "attempts": _D.attempts + bindparam("b_inc", type_=Integer),
    # an outcome without an HTTP attempt (cancelled, endpoint_disabled) keeps the last code
    "last_status_code": func.coalesce(bindparam("b_code", type_=Integer), _D.last_status_code),
    "last_error": bindparam("b_error", type_=Text),
}

# Final outcomes sharing their values (under load: hundreds of "succeeded, 204") are applied
# by one UPDATE over their ids ...
_FINISH = (
    update(deliveries)
    .where(
        _D.id.in_(bindparam("b_ids", expanding=True)),
        # only leases we still hold: a worker that lost one cannot overwrite the new owner
        _D.lease_owner == bindparam("b_owner"),
    )
    .values(status=bindparam("b_status", type_=Text), next_attempt_at=None, **_END_LEASE)
)

# ... retries carry their own due time (jitter), one parameter set each.
_RESCHEDULE = (
    update(deliveries)
    .where(_D.id == bindparam("b_id"), _D.lease_owner == bindparam("b_owner"))
    .values(status="pending", next_attempt_at=bindparam("b_next", type_=BigInteger), **_END_LEASE)
)

_CLEAR_FAILURE = (
    update(subscriptions)
    .where(subscriptions.c.id == bindparam("b_id"), subscriptions.c.first_failure_at.is_not(None))
    .values(first_failure_at=None)
)


def _text_for_db(body: str | None) -> str | None:
    # PostgreSQL TEXT cannot hold NUL; a receiver may answer with anything.
    return body.replace("\x00", "\ufffd") if body else body


async def record(
    db: Database,
    *,
    owner: str,
    now_ms: int,
    outcomes: Sequence[Outcome],
    releases: Sequence[tuple[str, int | None]] = (),
    disable_after_ms: int,
) -> Recorded:
    """Write a batch of outcomes and hand-backs in one transaction; see `Recorded`.

    Lock order (PostgreSQL): the deliveries' rows first, then subscriptions in id order, then
    the tenant's event head (append_event), the same order every batch takes, so two workers'
    batches cannot deadlock on each other.
    """
    result = Recorded()
    async with db.transaction() as tx:
        if releases:
            await tx.execute(
                _RELEASE, [{"b_id": i, "b_owner": owner, "b_next": nxt} for i, nxt in releases]
            )
        if not outcomes:
            return result
        # Outcomes that change the subscription or write an event (410, exhaustion; rare) must
        # know that their lease is still ours: lock those rows first, so no claim takes them
        # over before commit.
        special = [o for o in outcomes if o.effect in (GONE, EXHAUSTED)]
        held = await _lock_held(tx, special, owner)
        # Every HTTP attempt made is history and is logged, even one whose lease was lost.
        await tx.insert_many(attempts, _attempt_rows(outcomes))
        result.applied += await _update_deliveries(tx, outcomes, owner, now_ms)
        await _clear_failures(tx, outcomes, now_ms, disable_after_ms)
        applied_special = [o for o in special if o.delivery_id in held]
        await _subscription_effects(tx, applied_special, now_ms, disable_after_ms, result)
    return result


async def _lock_held(tx: Tx, outcomes: list[Outcome], owner: str) -> set[str]:
    """Lock the rows of `outcomes` whose lease `owner` still holds; their ids. (SQLite
    compiles FOR UPDATE to nothing: its one writer already excludes every other.)"""
    if not outcomes:
        return set()
    rows = await tx.execute(
        _HELD.with_for_update(),
        {"b_ids": [o.delivery_id for o in outcomes], "b_owner": owner},
    )
    return {r.id for r in rows}


def _attempt_rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """An `attempts` row for each outcome that made an HTTP attempt."""
    return [
        {
            "id": ids.new_id("att", o.now_ms),
            "delivery_id": o.delivery_id,
            "tenant_id": o.tenant_id,
            "subscription_id": o.subscription_id,
            "created_at": o.now_ms,
            "status_code": o.status_code,
            "latency_ms": o.latency_ms,
            "error": o.error,
            "response_body": _text_for_db(o.response_body),
        }
        for o in outcomes
        if o.attempted
    ]


async def _update_deliveries(tx: Tx, outcomes: Sequence[Outcome], owner: str, now_ms: int) -> int:
    """Finish or reschedule each delivery whose lease `owner` still holds; how many were.
    Finished ones are updated a group at a time (same status, count, code and error)."""
    groups: dict[tuple[str, int, int | None, str | None], list[str]] = {}
    retries: list[dict[str, Any]] = []
    for o in outcomes:
        inc = 1 if o.attempted else 0
        if o.status == "pending":
            retries.append(
                {
                    "b_id": o.delivery_id,
                    "b_owner": owner,
                    "b_next": o.next_attempt_at,
                    "b_inc": inc,
                    "b_code": o.status_code,
                    "b_error": o.last_error,
                    "b_now": now_ms,
                }
            )
        else:
            key = (o.status, inc, o.status_code, o.last_error)
            groups.setdefault(key, []).append(o.delivery_id)
    applied = 0
    for (status, inc, code, error), group_ids in groups.items():
        params = {"b_ids": group_ids, "b_owner": owner, "b_status": status, "b_inc": inc}
        done = await tx.execute(
            _FINISH, {**params, "b_code": code, "b_error": error, "b_now": now_ms}
        )
        applied += rows_changed(done, 0)
    if retries:
        done = await tx.execute(_RESCHEDULE, retries)
        # without a count from the driver, assume all applied (the count only feeds a log
        # line; the lease guard did the real work)
        applied += rows_changed(done, len(retries))
    return applied


async def _clear_failures(
    tx: Tx, outcomes: Sequence[Outcome], now_ms: int, disable_after_ms: int
) -> None:
    """A 2xx clears firstFailureAt even when it came after the lease was lost: the endpoint
    did answer. (Clearing does not depend on the stored row, so no row is read for it.)"""
    cleared = sorted(
        {
            o.subscription_id
            for o in outcomes
            if subscription_step(
                o.effect, None, now_ms=now_ms, disable_after_ms=disable_after_ms
            ).clear_first_failure
        }
    )
    if cleared:
        await tx.execute(_CLEAR_FAILURE, [{"b_id": sid} for sid in cleared])


async def _subscription_effects(
    tx: Tx, applied: list[Outcome], now_ms: int, disable_after_ms: int, result: Recorded
) -> None:
    """Carry out what `outcome.subscription_step` decides for each applied outcome.

    After this batch's 2xx cleared firstFailureAt: an exhaustion recorded alongside a success
    of the same subscription still starts a failure window. Each outcome reads the row afresh
    (locked), so several of one subscription in a batch see each other's changes.
    """
    for o in sorted(applied, key=lambda o: o.subscription_id):
        row = (
            await tx.execute(
                select(subscriptions)
                .where(subscriptions.c.id == o.subscription_id)
                .with_for_update()
            )
        ).first()
        state = None
        if row is not None:
            started = row.first_failure_at
            state = SubscriptionState(bool(row.enabled), None if started is None else int(started))
        step = subscription_step(o.effect, state, now_ms=now_ms, disable_after_ms=disable_after_ms)
        if EVENT_EXHAUSTED in step.events:
            await append_event(
                tx,
                tenant_id=o.tenant_id,
                event_type=EVENT_EXHAUSTED,
                data={
                    "subscriptionId": o.subscription_id,
                    "deliveryId": o.delivery_id,
                    "eventId": o.event_id,
                    "attempts": o.attempts,
                    "lastError": o.last_error or "failed",
                },
                now_ms=now_ms,
            )
            result.events += 1
            result.changed_subscriptions.add((o.tenant_id, o.subscription_id))
        if step.set_first_failure_at is not None:
            await tx.execute(
                update(subscriptions)
                .where(subscriptions.c.id == o.subscription_id)
                .values(first_failure_at=step.set_first_failure_at)
            )
        if step.disable_reason is not None and row is not None:
            await _disable(tx, o, row, step.disable_reason, now_ms, result)


async def _disable(
    tx: Tx, o: Outcome, row: Any, reason: str, now_ms: int, result: Recorded
) -> None:
    """Disable the subscription `row` (enabled, locked); the event goes out with the change.

    Like a PATCH, the change of its rules starts at a log position (the event's): events
    committed before keep the rules they were committed under (`end_rules`).
    """
    stored = await append_event(
        tx,
        tenant_id=o.tenant_id,
        event_type=EVENT_DISABLED,
        data={"subscriptionId": o.subscription_id, "url": o.url, "reason": reason},
        now_ms=now_ms,
    )
    await tx.execute(
        update(subscriptions)
        .where(subscriptions.c.id == o.subscription_id)
        .values(
            enabled=False,
            disabled_reason=reason,
            updated_at=now_ms,
            **await end_rules(tx, row, stored.position),
        )
    )
    result.events += 1
    result.disabled.append(o.subscription_id)
    result.changed_subscriptions.add((o.tenant_id, o.subscription_id))


async def queue_stats(db: Database, now_ms: int) -> tuple[int, float]:
    """Pending deliveries, and the age of the oldest one: seconds since it was created (0 when
    none is pending), whether it is due now or waits for a retry far ahead."""
    async with db.read() as conn:
        row = (await conn.execute(_STATS)).one()
    depth, oldest = int(row[0] or 0), row[1]
    age = max(0.0, (now_ms - int(oldest)) / 1000) if oldest is not None else 0.0
    return depth, age


# read from ix_deliveries_pending alone (it carries created_at)
_STATS = select(func.count(), func.min(_D.created_at)).where(PENDING)

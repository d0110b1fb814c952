"""SQL of subscriptions, deliveries and the dispatcher's cursors (SQLAlchemy Core).

Every lookup names the tenant, so another tenant's id reads as absent. Writers take the
caller's `Tx`; readers take any connection. No rules here: those are in `webhook.service`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    true,
    union_all,
    update,
)

from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx, rows_changed, rows_of
from causeflow.db.prebuilt import per_length
from causeflow.db.purge import delete_older
from causeflow.event import log
from causeflow.webhook.rules import Selection
from causeflow.webhook.tables import (
    PENDING,
    attempts,
    deliveries,
    dispatch_cursors,
    subscription_sequences,
    subscriptions,
)

# --- subscriptions -------------------------------------------------------------------------


async def count_subscriptions(conn: Conn, tenant_id: str) -> int:
    stmt = select(func.count()).select_from(subscriptions)
    stmt = stmt.where(subscriptions.c.tenant_id == tenant_id)
    return int((await conn.execute(stmt)).scalar_one())


async def insert_subscription(tx: Tx, values: dict[str, Any]) -> None:
    await tx.execute(subscriptions.insert().values(**values))


async def get_subscription(
    conn: Conn, tenant_id: str, subscription_id: str, *, for_update: bool = False
) -> AnyRow | None:
    """The row; `for_update` locks it until commit (PostgreSQL; SQLite has one writer)."""
    stmt = select(subscriptions).where(
        subscriptions.c.id == subscription_id, subscriptions.c.tenant_id == tenant_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).first()


async def list_subscriptions(
    conn: Conn, tenant_id: str, *, after_id: str | None, limit: int
) -> list[AnyRow]:
    cond = [subscriptions.c.tenant_id == tenant_id]
    if after_id is not None:
        cond.append(subscriptions.c.id > after_id)
    stmt = select(subscriptions).where(*cond).order_by(subscriptions.c.id).limit(limit)
    return list((await conn.execute(stmt)).all())


async def update_subscription(
    tx: Tx, tenant_id: str, subscription_id: str, values: dict[str, Any]
) -> int:
    stmt = (
        update(subscriptions)
        .where(subscriptions.c.id == subscription_id, subscriptions.c.tenant_id == tenant_id)
        .values(**values)
    )
    return int((await tx.execute(stmt)).rowcount)


async def delete_subscription(tx: Tx, tenant_id: str, subscription_id: str) -> int:
    stmt = delete(subscriptions).where(
        subscriptions.c.id == subscription_id, subscriptions.c.tenant_id == tenant_id
    )
    return int((await tx.execute(stmt)).rowcount)


# --- deliveries ----------------------------------------------------------------------------


async def insert_deliveries(tx: Tx, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany for the whole batch (rows as `service.delivery_row` makes them)."""
    await tx.insert_many(deliveries, rows)


async def cancel_pending(tx: Tx, tenant_id: str, subscription_id: str, now_ms: int) -> int:
    """Cancel the pending deliveries, leased ones too: their lease ends here, so a worker's
    attempt already under way cannot record an outcome that would bring one back."""
    stmt = (
        update(deliveries)
        .where(
            deliveries.c.subscription_id == subscription_id,
            deliveries.c.tenant_id == tenant_id,
            deliveries.c.status == "pending",
        )
        .values(
            status="cancelled",
            next_attempt_at=None,
            lease_owner=None,
            lease_until=None,
            updated_at=now_ms,
        )
    )
    return int((await tx.execute(stmt)).rowcount)


async def get_delivery(conn: Conn, tenant_id: str, delivery_id: str) -> AnyRow | None:
    stmt = select(deliveries).where(
        deliveries.c.id == delivery_id, deliveries.c.tenant_id == tenant_id
    )
    return (await conn.execute(stmt)).first()


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    """Which deliveries a listing wants; every field narrows (None: any)."""

    subscription_id: str | None = None
    event_id: str | None = None
    incident_id: str | None = None
    status: str | None = None
    event_types: frozenset[str] | None = None
    since_ms: int | None = None  # created at or after
    until_ms: int | None = None  # created at or before


def _search_conditions(
    tenant_id: str, query: DeliveryQuery, before: tuple[int, str] | None
) -> list[Any]:
    """Every condition of a delivery search but the event types."""
    d = deliveries.c
    cond = [d.tenant_id == tenant_id]
    if query.subscription_id is not None:
        sub: ColumnElement[str] = d.subscription_id
        if query.event_id is not None:  # the event's deliveries are fewer than the subscription's
            sub = sub.concat(literal_column("''"))
        cond.append(sub == query.subscription_id)
    if query.event_id is not None:
        cond.append(d.event_id == query.event_id)
    if query.incident_id is not None:
        cond.append(d.event_id.in_(log.ids_of_incident(tenant_id, query.incident_id)))
    if query.status == "pending":
        # The queue's partial index (the literal lets the planner use it), and the tenant as
        # an expression, so that no planner walks the tenant's whole history newest first
        # instead: the queue is small, a history grows without bound.
        cond[0] = d.tenant_id.concat(literal_column("''")) == tenant_id
        cond.append(PENDING)
    elif query.status is not None:
        cond.append(d.status == query.status)
    if query.since_ms is not None:
        cond.append(d.created_at >= query.since_ms)
    if query.until_ms is not None:
        cond.append(d.created_at <= query.until_ms)
    if before is not None:
        created, last_id = before
        cond.append(or_(d.created_at < created, and_(d.created_at == created, d.id < last_id)))
    return cond


_NEWEST_FIRST = (deliveries.c.created_at.desc(), deliveries.c.id.desc())
# a search naming more event types than this walks the tenant's range instead
_MAX_TYPE_RANGES = 20


async def list_deliveries(
    conn: Conn,
    tenant_id: str,
    query: DeliveryQuery,
    *,
    before: tuple[int, str] | None,
    limit: int,
) -> list[AnyRow]:
    """Newest first, keyset on (created_at, id).

    Event types: each type reads its own newest-first range of `ix_deliveries_tenant_type_created`
    (a page of matches at most; nothing for a type the tenant lacks), and several types are a
    UNION ALL of those ranges, sorted and cut to the page: an `IN` list over that index would
    read every match of every type and sort them all. A search by event, incident or pending
    status reads its own (smaller) index and tests the type on each row instead, and so does
    a search naming more than `_MAX_TYPE_RANGES` types (it walks the tenant's range)."""
    d = deliveries.c
    cond = _search_conditions(tenant_id, query, before)
    types = sorted(query.event_types or ())
    if types and (
        query.event_id is not None or query.incident_id is not None or query.status == "pending"
    ):
        # the type as an expression: no planner trades the narrower index for the type's range
        cond.append(d.event_type.concat(literal_column("''")).in_(types))
        types = []
    if len(types) > _MAX_TYPE_RANGES:
        # too many ranges for one statement (SQLite allows 500 SELECTs in a compound): the
        # tenant's newest-first range, the type tested on each row
        cond.append(d.event_type.concat(literal_column("''")).in_(types))
        types = []
    if len(types) <= 1:
        cond.extend(d.event_type == t for t in types)
        order = _NEWEST_FIRST
        if query.event_id is not None:
            # an event's few deliveries from ix_deliveries_tenant_event, sorted: ordering by
            # an expression keeps SQLite from walking the tenant's newest-first range instead
            order = ((d.created_at + 0).desc(), d.id.desc())
        stmt = select(deliveries).where(*cond).order_by(*order).limit(limit)
        return list((await conn.execute(stmt)).all())
    ranges = [
        select(deliveries).where(*cond, d.event_type == t).order_by(*_NEWEST_FIRST).limit(limit)
        for t in types
    ]
    parts = union_all(*(select(*r.subquery().c) for r in ranges)).subquery()
    merged = select(*parts.c).order_by(parts.c.created_at.desc(), parts.c.id.desc()).limit(limit)
    return list((await conn.execute(merged)).all())


async def messages_after(
    conn: Conn, tenant_id: str, subscription_id: str, after: int, limit: int
) -> list[AnyRow]:
    """The subscription's numbered deliveries after sequence `after`, in sequence order (read
    from the unique (subscription_id, sequence) index)."""
    d = deliveries.c
    stmt = (
        select(deliveries)
        .where(
            d.subscription_id == subscription_id,
            d.tenant_id == tenant_id,
            d.sequence > after,
        )
        .order_by(d.sequence)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


async def list_attempts(conn: Conn, tenant_id: str, delivery_id: str, limit: int) -> list[AnyRow]:
    stmt = (
        select(attempts)
        .where(attempts.c.delivery_id == delivery_id, attempts.c.tenant_id == tenant_id)
        .order_by(attempts.c.created_at, attempts.c.id)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


async def schedule_retry(tx: Tx, tenant_id: str, delivery_id: str, now_ms: int) -> int:
    """Make a delivery due now unless an attempt holds its lease; 0 rows when leased/absent.

    The lease test sits in the UPDATE itself so a worker's claim and this retry cannot both
    win: on PostgreSQL the UPDATE waits for a claiming transaction and re-checks the lease.
    A delivery already pending keeps its automatic schedule (it is only brought forward);
    a finished one gets one manual attempt.
    """
    row = deliveries.c
    stmt = (
        update(deliveries)
        .where(
            row.id == delivery_id,
            row.tenant_id == tenant_id,
            or_(row.lease_until.is_(None), row.lease_until <= now_ms),
        )
        .values(
            manual=(row.status != "pending") | row.manual,
            status="pending",
            next_attempt_at=now_ms,
            updated_at=now_ms,
        )
    )
    return int((await tx.execute(stmt)).rowcount)


async def recover_failed(
    tx: Tx, tenant_id: str, subscription_id: str, selection: Selection, now_ms: int
) -> int:
    """The subscription's `failed` deliveries created in the selection's window, of its types
    and incident when given, become due now."""
    stmt = (
        update(deliveries)
        .where(
            deliveries.c.subscription_id == subscription_id,
            deliveries.c.tenant_id == tenant_id,
            deliveries.c.status == "failed",
            deliveries.c.created_at >= selection.since_ms,
            deliveries.c.created_at <= selection.until_ms,
        )
        .values(status="pending", next_attempt_at=now_ms, manual=False, updated_at=now_ms)
    )
    if selection.types is not None:
        stmt = stmt.where(deliveries.c.event_type.in_(sorted(selection.types)))
    if selection.incident_id is not None:
        stmt = stmt.where(
            deliveries.c.event_id.in_(log.ids_of_incident(tenant_id, selection.incident_id))
        )
    return int((await tx.execute(stmt)).rowcount)


# --- dispatch cursors (how far each tenant's log has been dispatched) -----------------------

_READ_CURSOR = select(dispatch_cursors.c.position, dispatch_cursors.c.generation).where(
    dispatch_cursors.c.tenant_id == bindparam("b_tenant")
)
_ADVANCE_CURSOR = (
    update(dispatch_cursors)
    .where(
        dispatch_cursors.c.tenant_id == bindparam("b_tenant"),
        dispatch_cursors.c.position == bindparam("b_old"),
        dispatch_cursors.c.generation == bindparam("b_generation"),
    )
    .values(position=bindparam("b_new"))
    .returning(dispatch_cursors.c.tenant_id)  # a row only if the compare-and-set matched
)


async def read_cursor(conn: Conn, tenant_id: str) -> tuple[int, int] | None:
    """The cursor's position and generation; None before the tenant's first batch."""
    rows = await rows_of(conn, _READ_CURSOR, {"b_tenant": tenant_id})
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


async def cursor_position(conn: Conn, tenant_id: str) -> int:
    """How far the tenant's log has been dispatched (0 before its first batch)."""
    stored = await read_cursor(conn, tenant_id)
    return stored[0] if stored is not None else 0


async def ensure_cursor(tx: Tx, tenant_id: str) -> None:
    stmt = tx.db.dialect.insert_ignore(dispatch_cursors, ["tenant_id"]).values(
        tenant_id=tenant_id, position=0
    )
    await tx.execute(stmt)


async def advance_cursor(tx: Tx, tenant_id: str, old: int, new: int, generation: int = 0) -> bool:
    """Compare-and-set: True only if the cursor still stood at `old`, in `generation`.

    On PostgreSQL a second dispatcher's UPDATE waits for the first one's row lock, then
    re-reads the row, sees the moved position and matches nothing, so exactly one of them
    commits a given batch. A subscription delete moves the generation the same way.
    """
    params = {"b_tenant": tenant_id, "b_old": old, "b_new": new, "b_generation": generation}
    return len(await tx.returning(_ADVANCE_CURSOR, params)) == 1


async def bump_generation(tx: Tx, tenant_id: str) -> None:
    """A subscription of the tenant is going away: a batch read before this cannot commit.

    Locks the cursor's row until commit: a dispatcher's compare-and-set either committed
    before (its deliveries are then visible to the caller's later statements) or waits and
    fails.
    """
    await ensure_cursor(tx, tenant_id)
    stmt = (
        update(dispatch_cursors)
        .where(dispatch_cursors.c.tenant_id == tenant_id)
        .values(generation=dispatch_cursors.c.generation + 1)
    )
    await tx.execute(stmt)


async def tenants_behind(conn: Conn, limit: int = 10_000) -> list[str]:
    """Tenants whose log head is beyond their dispatch cursor (or who have no cursor yet)."""
    c = dispatch_cursors.c
    return await log.tenants_ahead_of(conn, dispatch_cursors, c.tenant_id, c.position, limit)


# --- sequence numbers (each subscription's count of matches) -------------------------------

_SEQ = subscription_sequences.c
# The read of a batch's counters, locked on PostgreSQL (the cursor's row lock already
# serializes the tenant's batches), in the driver's own SQL per number of counters: run once
# per batch
_SEQUENCES = per_length(
    lambda count: (
        select(_SEQ.subscription_id, _SEQ.last)
        .where(_SEQ.subscription_id.in_([bindparam(f"b_{i}") for i in range(count)]))
        .with_for_update()
    )
)


_SET_SEQUENCE = (
    update(subscription_sequences)
    .where(_SEQ.subscription_id == bindparam("b_id"), _SEQ.last == bindparam("b_was"))
    .values(last=bindparam("b_last"))
)


async def take_sequences(tx: Tx, tenant_id: str, counts: dict[str, int]) -> dict[str, int]:
    """Add `counts[sub]` to each subscription's counter; the first number each one took.

    Only the dispatcher calls this, after its cursor's compare-and-set: the cursor's row lock
    serializes every bump of the tenant, and a rolled-back batch takes its bump back with it.
    The counters are read in one query and written in one executemany (a subscription's first
    batch inserts its row), whatever the number of subscriptions; each write names the value it
    read, so a counter moved in between fails the batch instead of repeating a number.
    """
    if not counts:
        return {}
    ids = sorted(counts)
    rows = (await tx.exec_driver_sql(_SEQUENCES(tx.dialect, len(ids)), tuple(ids))).all()
    last = {sid: int(value) for sid, value in rows}
    moves = [
        {"b_id": sid, "b_was": last[sid], "b_last": last[sid] + counts[sid]}
        for sid in ids
        if sid in last
    ]
    if moves:
        done = rows_changed(await tx.execute(_SET_SEQUENCE, moves), len(moves))
        # without a count from the driver, the cursor's lock is the guard
        if done != len(moves):
            raise RuntimeError("a sequence counter moved under the dispatcher's batch")
    fresh = [
        {"subscription_id": sid, "tenant_id": tenant_id, "last": counts[sid]}
        for sid in ids
        if sid not in last
    ]
    await tx.insert_many(subscription_sequences, fresh)
    return {sid: last.get(sid, 0) + 1 for sid in ids}


async def delete_sequence(tx: Tx, subscription_id: str) -> None:
    stmt = delete(subscription_sequences).where(_SEQ.subscription_id == subscription_id)
    await tx.execute(stmt)


# --- retention -----------------------------------------------------------------------------


def events_still_needed(event: log.EventRef) -> list[Any]:
    """Conditions on a stored event (its tenant, id and position, handed over by the log's
    purge) under which outbound delivery still needs it: the tenant's dispatch cursor has not
    passed it (its deliveries are not made yet), or a pending delivery has yet to send it.
    Retention keeps such an event whatever its age: a purged one would fail its delivery
    (`event_missing`) or never be dispatched."""
    cursor = (
        select(dispatch_cursors.c.position)
        .where(dispatch_cursors.c.tenant_id == event.tenant_id)
        .scalar_subquery()
    )
    pending = (
        select(deliveries.c.id)
        .where(
            deliveries.c.tenant_id == event.tenant_id,
            deliveries.c.event_id == event.event_id,
            PENDING,
        )
        .exists()
    )
    return [event.position > func.coalesce(cursor, 0), pending]


def _tenants(table: Any, only: Select[Any] | None, exclude: Select[Any] | None) -> list[Any]:
    """The conditions that keep a purge to the tenants `only` selects (when given) and off
    those `exclude` selects."""
    where = []
    if only is not None:
        where.append(table.c.tenant_id.in_(only))
    if exclude is not None:
        where.append(table.c.tenant_id.not_in(exclude))
    return where


async def purge_attempts(
    tx: Tx,
    cutoff_ms: int,
    limit: int,
    *,
    only: Select[Any] | None = None,
    exclude: Select[Any] | None = None,
) -> int:
    """Up to `limit` attempts made before `cutoff_ms` (of the tenants `only` selects, when
    given; none of those `exclude` selects); how many went."""
    return await delete_older(
        tx,
        attempts,
        key="id",
        time_col="created_at",
        cutoff=cutoff_ms,
        limit=limit,
        where=tuple(_tenants(attempts, only, exclude)),
    )


async def purge_finished_deliveries(
    tx: Tx, cutoff_ms: int, limit: int, *, tenants: Select[Any]
) -> int:
    """Up to `limit` deliveries created before `cutoff_ms` that are no longer pending, of the
    tenants whose ids `tenants` selects; how many went.

    The batch is read from `ix_deliveries_tenant_created`, one tenant's range after another
    (no index has `created_at` alone: each would cost every delivery's writes): on PostgreSQL
    a LATERAL subquery takes each tenant's oldest, on SQLite an `IN` over the tenants searches
    each one's range. A tenant with nothing old costs one index probe."""
    d = deliveries.c
    old = (d.created_at < cutoff_ms, d.status != "pending")
    if tx.db.dialect.lateral:
        ids = tenants.subquery()
        each = (
            select(d.id)
            .where(d.tenant_id == next(iter(ids.c)), *old)
            .order_by(d.created_at)
            .limit(limit)
            .lateral()
        )
        doomed = select(each.c.id).select_from(ids.join(each, true())).limit(limit)
    else:
        doomed = select(d.id).where(d.tenant_id.in_(tenants), *old).limit(limit)
    result = await tx.execute(delete(deliveries).where(d.id.in_(doomed.scalar_subquery())))
    return rows_changed(result, 0)


# --- an endpoint's statistics (webhook.stats turns these counts into the view) -------------

_A = attempts.c
# a 2xx answer, or a broker's acknowledgement (recorded with neither status nor error)
_OK = or_(
    and_(_A.status_code.is_not(None), _A.status_code >= 200, _A.status_code < 300),
    and_(_A.status_code.is_(None), _A.error.is_(None)),
)
_OK_FLAG = case((_OK, 1), else_=0)


def _attempts_of(tenant_id: str, subscription_id: str) -> list[Any]:
    return [_A.subscription_id == subscription_id, _A.tenant_id == tenant_id]


async def attempt_tallies(
    conn: Conn, tenant_id: str, subscription_id: str, since_ms: int, recent_ms: int
) -> tuple[list[tuple[bool, int | None, int]], list[tuple[bool, int | None, int]]]:
    """(ok, latency_ms, count) of the attempts since `since_ms`, and of those since `recent_ms`
    (a later time), read in one pass over the subscription's index range."""
    recent = case((_A.created_at >= recent_ms, 1), else_=0).label("recent")
    ok = _OK_FLAG.label("ok")
    stmt = (
        select(recent, ok, _A.latency_ms, func.count())
        .where(*_attempts_of(tenant_id, subscription_id), _A.created_at >= since_ms)
        .group_by(recent, ok, _A.latency_ms)
    )
    every: list[tuple[bool, int | None, int]] = []
    later: list[tuple[bool, int | None, int]] = []
    for is_recent, is_ok, latency, count in (await conn.execute(stmt)).all():
        row = (bool(is_ok), latency, int(count))
        every.append(row)
        if is_recent:
            later.append(row)
    return every, later


async def attempt_series(
    conn: Conn, tenant_id: str, subscription_id: str, start_ms: int, bucket_ms: int
) -> list[tuple[int, bool, int]]:
    """(bucket index, ok, count) of the attempts since `start_ms`, `bucket_ms` a bucket."""
    index = ((_A.created_at - start_ms) // bucket_ms).label("bucket")
    ok = _OK_FLAG.label("ok")
    stmt = (
        select(index, ok, func.count())
        .where(*_attempts_of(tenant_id, subscription_id), _A.created_at >= start_ms)
        .group_by(index, ok)
    )
    return [(int(i), bool(k), int(n)) for i, k, n in (await conn.execute(stmt)).all()]


async def last_failed_attempt(conn: Conn, tenant_id: str, subscription_id: str) -> AnyRow | None:
    """The newest attempt that did not succeed (its index range read backwards)."""
    stmt = (
        select(_A.created_at, _A.status_code, _A.error)
        .where(*_attempts_of(tenant_id, subscription_id), ~_OK)
        .order_by(_A.created_at.desc())
        .limit(1)
    )
    return (await conn.execute(stmt)).first()


async def failures_since_success(conn: Conn, tenant_id: str, subscription_id: str) -> int:
    """Failed attempts after the newest successful one (all of them if none succeeded)."""
    newest_ok = (
        select(_A.created_at)
        .where(*_attempts_of(tenant_id, subscription_id), _OK)
        .order_by(_A.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    stmt = select(func.count()).where(
        *_attempts_of(tenant_id, subscription_id),
        _A.created_at > func.coalesce(newest_ok, -1),
    )
    return int((await conn.execute(stmt)).scalar_one())


async def backlog(conn: Conn, tenant_id: str, subscription_id: str) -> tuple[int, int | None]:
    """How many of its deliveries are pending, and when the oldest of them was created."""
    stmt = select(func.count(), func.min(deliveries.c.created_at)).where(
        deliveries.c.subscription_id == subscription_id,
        deliveries.c.tenant_id == tenant_id,
        PENDING,
    )
    count, oldest = (await conn.execute(stmt)).one()
    return int(count), oldest

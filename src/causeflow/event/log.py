"""The event log: append inside the caller's transaction, read in commit order.

`append_event` takes the tenant's next position by updating its `event_heads` row; that row
stays locked until the caller commits, so a later position is never committed before an
earlier one and a reader that has seen position N never later finds a new event before N.
It never commits: the state change, its event and everything else of the request go in one
transaction, and readers are woken once that transaction has committed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Column, ColumnElement, Select, and_, bindparam, delete, func, select
from sqlalchemy.sql import FromClause

from causeflow import ids
from causeflow.clock import ms_to_rfc3339
from causeflow.db.conn import AnyResult, AnyRow, Conn
from causeflow.db.dialect import NOTIFY_CHANNEL
from causeflow.db.engine import Tx, rows_of
from causeflow.db.prebuilt import prebuilt
from causeflow.event.tables import event_heads, events
from causeflow.jsonutil import dumps
from causeflow.tracing import spans


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: str
    tenant_id: str
    position: int
    type: str
    incident_id: str | None
    created_at: int
    envelope: str  # the exact JSON text every reader sees
    test: bool = False
    traceparent: str | None = None  # the span that appended it (tracing on)


def build_envelope(
    *,
    event_id: str,
    event_type: str,
    tenant_id: str,
    data: dict[str, Any],
    now_ms: int,
    test: bool = False,
) -> str:
    envelope: dict[str, Any] = {
        "id": event_id,
        "event": event_type,
        "timestamp": ms_to_rfc3339(now_ms),
        "tenantId": tenant_id,
        "data": data,
    }
    if test:
        envelope["test"] = True
    return dumps(envelope).decode()


# Built once per dialect: building and hashing a statement costs more than SQLite running it.
_HEAD_UPSERT = prebuilt(
    lambda dialect: (
        dialect.insert(event_heads)
        .values(tenant_id=bindparam("t"), position=bindparam("n"))
        .on_conflict_do_update(
            index_elements=["tenant_id"],
            set_={"position": event_heads.c.position + bindparam("n")},
        )
        .returning(event_heads.c.position)
    )
)


async def next_positions(tx: Tx, tenant_id: str, count: int = 1) -> int:
    """Reserve `count` positions; returns the last one. Locks the tenant's head until commit.

    The first reservation of a tenant in a transaction also announces it to other processes
    (NOTIFY, delivered only at commit): issued before the head is locked, so the round trip
    stays out of the time the lock is held, which serializes the tenant's writers.
    """
    if count and not tx.heads.get(tenant_id):
        await tx.db.dialect.notify(tx.conn, NOTIFY_CHANNEL, tenant_id)
        tx.heads[tenant_id] = True
    rows = await tx.returning(_HEAD_UPSERT(tx.db.dialect), {"t": tenant_id, "n": count})
    tx.heads.setdefault(tenant_id, False)
    (position,) = rows  # exactly one
    return int(position[0])


async def lock_log_head(tx: Tx, tenant_id: str) -> None:
    """Hold the tenant's log head until commit (once per transaction; PostgreSQL only, where
    writers take it before any other row lock; SQLite has one writer)."""
    if tx.db.dialect.multi_process and tenant_id not in tx.heads:
        await next_positions(tx, tenant_id, 0)


async def lock_log_heads(tx: Tx, tenant_ids: Iterable[str]) -> None:
    """`lock_log_head` for several tenants, in one order for every writer (no deadlock)."""
    for tenant_id in sorted(set(tenant_ids)):
        await lock_log_head(tx, tenant_id)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event to append with `append_events`."""

    event_type: str
    data: dict[str, Any]
    test: bool = False
    now_ms: int | None = None  # when it happened, if not the batch's `now_ms`
    # the span to append it under (a request's, carried through a batch); else the current one
    traceparent: str | None = None


class ToAppend(Protocol):
    """What `append_events` reads of each item: a `NewEvent`, or a caller's own record with
    the same fields (a checked publish), appended without a copy."""

    @property
    def event_type(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def test(self) -> bool: ...
    @property
    def now_ms(self) -> int | None: ...
    @property
    def traceparent(self) -> str | None: ...


async def append_event(
    tx: Tx,
    *,
    tenant_id: str,
    event_type: str,
    data: dict[str, Any],
    now_ms: int,
    test: bool = False,
) -> StoredEvent:
    return (
        await append_events(
            tx, tenant_id=tenant_id, items=[NewEvent(event_type, data, test)], now_ms=now_ms
        )
    )[0]


async def append_events(
    tx: Tx, *, tenant_id: str, items: Sequence[ToAppend], now_ms: int
) -> list[StoredEvent]:
    """Append several events of one tenant, in order: one position reservation, one insert."""
    if not items:
        return []
    last = await next_positions(tx, tenant_id, len(items))
    first = last - len(items) + 1
    stored: list[StoredEvent] = []
    rows: list[dict[str, Any]] = []
    for offset, item in enumerate(items):
        at_ms = now_ms if item.now_ms is None else item.now_ms
        event_id = ids.new_id("evt", at_ms)
        envelope = build_envelope(
            event_id=event_id,
            event_type=item.event_type,
            tenant_id=tenant_id,
            data=item.data,
            now_ms=at_ms,
            test=item.test,
        )
        ref = item.data.get("incidentId")
        incident_id = ref if isinstance(ref, str) else None
        trace = _append_span(event_id, item, ref) if spans.enabled() else None
        event = StoredEvent(
            event_id,
            tenant_id,
            first + offset,
            item.event_type,
            incident_id,
            at_ms,
            envelope,
            item.test,
            trace,
        )
        stored.append(event)
        rows.append(
            {
                "id": event_id,
                "tenant_id": tenant_id,
                "position": event.position,
                "type": item.event_type,
                "incident_id": incident_id,
                "created_at": at_ms,
                "test": item.test,
                "envelope": envelope,
                "traceparent": trace,
            }
        )
    await tx.insert_many(events, rows)
    tx.appended.extend((e.tenant_id, e.position, e.type) for e in stored)
    return stored


def _append_span(event_id: str, item: ToAppend, incident_id: object) -> str | None:
    """The event's `event.append` span (tracing on): its traceparent, stored with the event."""
    found = {"causeflow.event.id": event_id, "causeflow.event.type": item.event_type}
    if isinstance(incident_id, str):
        found["causeflow.incident.id"] = incident_id
    return spans.event_appended(item.traceparent, found)


def _row_to_event(row: AnyRow) -> StoredEvent:
    return StoredEvent(
        row.id,
        row.tenant_id,
        row.position,
        row.type,
        row.incident_id,
        row.created_at,
        row.envelope,
        bool(row.test),
        row.traceparent,
    )


def _reader_conditions(
    tenant_id: str,
    types: frozenset[str] | None,
    incident_id: str | None,
    since_ms: int | None,
) -> list[Any]:
    cond: list[Any] = [events.c.tenant_id == tenant_id]
    if types:
        cond.append(events.c.type.in_(sorted(types)))
    if incident_id:
        cond.append(events.c.incident_id == incident_id)
    if since_ms is not None:
        cond.append(events.c.created_at >= since_ms)
    return cond


async def read_after(
    conn: Conn,
    tenant_id: str,
    after_position: int,
    *,
    limit: int = 500,
    types: frozenset[str] | None = None,
    incident_id: str | None = None,
    since_ms: int | None = None,
    until_position: int | None = None,
) -> list[StoredEvent]:
    """Events of one tenant after a position, ascending."""
    cond = _reader_conditions(tenant_id, types, incident_id, since_ms)
    cond.append(events.c.position > after_position)
    if until_position is not None:
        cond.append(events.c.position <= until_position)
    stmt = select(events).where(and_(*cond)).order_by(events.c.position).limit(limit)
    return [_row_to_event(r) for r in (await conn.execute(stmt)).all()]


async def read_before(
    conn: Conn,
    tenant_id: str,
    before_position: int | None,
    *,
    after_position: int = 0,
    limit: int = 500,
    types: frozenset[str] | None = None,
    incident_id: str | None = None,
    since_ms: int | None = None,
) -> list[StoredEvent]:
    """Events of one tenant before a position (None: the newest) and after another,
    newest first."""
    cond = _reader_conditions(tenant_id, types, incident_id, since_ms)
    cond.append(events.c.position > after_position)
    if before_position is not None:
        cond.append(events.c.position < before_position)
    stmt = select(events).where(and_(*cond)).order_by(events.c.position.desc()).limit(limit)
    return [_row_to_event(r) for r in (await conn.execute(stmt)).all()]


async def find_event(conn: Conn, tenant_id: str, event_id: str) -> StoredEvent | None:
    row = (
        await conn.execute(
            select(events).where(events.c.id == event_id, events.c.tenant_id == tenant_id)
        )
    ).first()
    return _row_to_event(row) if row else None


_HEAD_POSITION = select(event_heads.c.position).where(event_heads.c.tenant_id == bindparam("t"))


async def head_position(conn: Conn, tenant_id: str) -> int:
    rows = await rows_of(conn, _HEAD_POSITION, {"t": tenant_id})
    return int(rows[0][0]) if rows else 0


async def count_after(conn: Conn, tenant_id: str, after_position: int, limit: int) -> int:
    """How many events follow a position, counting at most `limit + 1` (cheap bound check)."""
    sub = (
        select(events.c.position)
        .where(events.c.tenant_id == tenant_id, events.c.position > after_position)
        .limit(limit + 1)
        .subquery()
    )
    return int((await conn.execute(select(func.count()).select_from(sub))).scalar_one())


# --- pages for outbound readers (webhook dispatch and replay) --------------------------------
# Rows carry id, position, type and envelope.

# Built once: the dispatcher runs it in every batch, and building and hashing a statement
# costs several times what SQLite takes to run it.
_PAGE = (
    select(events.c.id, events.c.position, events.c.type, events.c.envelope, events.c.traceparent)
    .where(
        events.c.tenant_id == bindparam("b_tenant"),
        events.c.position > bindparam("b_after"),
        events.c.position <= bindparam("b_up_to"),
    )
    .order_by(events.c.position)
    .limit(bindparam("b_limit"))
)


async def page_after(
    conn: Conn, tenant_id: str, after_position: int, up_to: int, limit: int
) -> AnyResult:
    """At most `limit` events of the tenant in (after_position, up_to], ascending.

    The result itself: a caller may stop early and close it (rows are fetched as iterated).
    """
    params = {"b_tenant": tenant_id, "b_after": after_position, "b_up_to": up_to, "b_limit": limit}
    return await conn.execute(_PAGE, params)


async def page_in_window(
    conn: Conn,
    tenant_id: str,
    since_ms: int,
    until_ms: int,
    after_position: int,
    limit: int,
    *,
    types: Collection[str] | None = None,
    incident_id: str | None = None,
) -> list[AnyRow]:
    """At most `limit` events of the tenant created in [since_ms, until_ms], after a position,
    ascending; only of `types` and of one incident when given."""
    stmt = (
        select(events.c.id, events.c.position, events.c.type, events.c.envelope)
        .where(
            events.c.tenant_id == tenant_id,
            events.c.created_at >= since_ms,
            events.c.created_at <= until_ms,
            events.c.position > after_position,
        )
        .order_by(events.c.position)
        .limit(limit)
    )
    if types is not None:
        stmt = stmt.where(events.c.type.in_(sorted(types)))
    if incident_id is not None:
        stmt = stmt.where(events.c.incident_id == incident_id)
    return list((await conn.execute(stmt)).all())


def ids_of_incident(tenant_id: str, incident_id: str) -> Select[Any]:
    """The ids of one incident's events, as a subquery for the tables that name events."""
    return select(events.c.id).where(
        events.c.tenant_id == tenant_id, events.c.incident_id == incident_id
    )


async def tenants_ahead_of(
    conn: Conn,
    cursors: FromClause,
    cursor_tenant: Column[Any],
    cursor_position: Column[Any],
    limit: int,
) -> list[str]:
    """Tenants whose log head is beyond the position a reader keeps for them in its own table
    (`cursors`, one row per tenant), or who have no row there yet: one statement."""
    stmt = (
        select(event_heads.c.tenant_id)
        .select_from(event_heads.outerjoin(cursors, cursor_tenant == event_heads.c.tenant_id))
        .where(event_heads.c.position > func.coalesce(cursor_position, 0))
        .limit(limit)
    )
    return [r[0] for r in (await conn.execute(stmt)).all()]


@dataclass(frozen=True, slots=True)
class EventRef:
    """What a reader of the log may name of one stored event in a condition of its own (the
    purge's `still_needed`): its tenant, id and position, as column expressions. The reader
    correlates its own tables with them and never learns the log's table."""

    tenant_id: ColumnElement[str]
    event_id: ColumnElement[str]
    position: ColumnElement[int]


async def purge_older(
    tx: Tx,
    cutoff_ms: int,
    limit: int,
    *,
    only: Select[Any] | None = None,
    exclude: Select[Any] | None = None,
    still_needed: Callable[[EventRef], Iterable[Any]] | None = None,
) -> int:
    """Delete at most `limit` events created before `cutoff_ms` (of the tenants `only`
    selects, when given; none of those `exclude` selects; none for which a condition
    `still_needed(ref)` gives on the event holds: a reader of the log has yet to use it); how
    many went."""
    where = [events.c.created_at < cutoff_ms]
    if only is not None:
        where.append(events.c.tenant_id.in_(only))
    if exclude is not None:
        where.append(events.c.tenant_id.not_in(exclude))
    if still_needed is not None:
        ref = EventRef(events.c.tenant_id, events.c.id, events.c.position)
        where.extend(~condition for condition in still_needed(ref))
    doomed = select(events.c.id).where(*where).limit(limit).scalar_subquery()
    return (await tx.execute(delete(events).where(events.c.id.in_(doomed)))).rowcount or 0


async def envelopes_of(conn: Conn, event_ids: list[str]) -> dict[str, str]:
    """The stored envelope text of each of these events that still exists, by id."""
    stmt = select(events.c.id, events.c.envelope).where(events.c.id.in_(event_ids))
    return {r.id: r.envelope for r in (await conn.execute(stmt)).all()}


async def traceparents_of(conn: Conn, event_ids: list[str]) -> dict[str, str]:
    """The stored traceparent of each of these events that has one, by id."""
    stmt = select(events.c.id, events.c.traceparent).where(
        events.c.id.in_(event_ids), events.c.traceparent.is_not(None)
    )
    return {r.id: r.traceparent for r in (await conn.execute(stmt)).all()}


async def tenant_envelopes(conn: Conn, tenant_id: str, event_ids: list[str]) -> dict[str, str]:
    """The stored envelope text of each of these events of the tenant that still exists."""
    if not event_ids:
        return {}
    stmt = select(events.c.id, events.c.envelope).where(
        events.c.tenant_id == tenant_id, events.c.id.in_(event_ids)
    )
    return {r.id: r.envelope for r in (await conn.execute(stmt)).all()}

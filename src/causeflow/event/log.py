"""The event log: append inside the caller's transaction, read in commit order.

`append_event` takes the tenant's next position by updating its `event_heads` row; that row
stays locked until the caller commits, so a later position is never committed before an
earlier one and a reader that has seen position N never later finds a new event before N.
It never commits: the state change, its event and everything else of the request go in one
transaction, and readers are woken once that transaction has committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select

from causeflow import ids
from causeflow.clock import ms_to_rfc3339
from causeflow.db.dialect import NOTIFY_CHANNEL
from causeflow.db.engine import Tx
from causeflow.event.tables import event_heads, events
from causeflow.jsonutil import dumps


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


async def next_positions(tx: Tx, tenant_id: str, count: int = 1) -> int:
    """Reserve `count` positions; returns the last one. Locks the tenant's head until commit."""
    stmt = (
        tx.db.dialect.insert(event_heads)
        .values(tenant_id=tenant_id, position=count)
        .on_conflict_do_update(
            index_elements=["tenant_id"], set_={"position": event_heads.c.position + count}
        )
        .returning(event_heads.c.position)
    )
    return int((await tx.conn.execute(stmt)).scalar_one())


async def append_event(
    tx: Tx,
    *,
    tenant_id: str,
    event_type: str,
    data: dict[str, Any],
    now_ms: int,
    test: bool = False,
) -> StoredEvent:
    event_id = ids.new_id("evt", now_ms)
    envelope = build_envelope(
        event_id=event_id,
        event_type=event_type,
        tenant_id=tenant_id,
        data=data,
        now_ms=now_ms,
        test=test,
    )
    incident_id = data.get("incidentId") if isinstance(data.get("incidentId"), str) else None
    position = await next_positions(tx, tenant_id)
    await tx.conn.execute(
        events.insert().values(
            id=event_id,
            tenant_id=tenant_id,
            position=position,
            type=event_type,
            incident_id=incident_id,
            created_at=now_ms,
            test=test,
            envelope=envelope,
        )
    )
    stored = StoredEvent(
        event_id, tenant_id, position, event_type, incident_id, now_ms, envelope, test
    )
    await _announce(tx, stored)
    return stored


async def _announce(tx: Tx, event: StoredEvent) -> None:
    announced = tx.appended
    if not announced:
        # One NOTIFY per transaction is enough: listeners read everything after their cursor.
        await tx.db.dialect.notify(tx.conn, NOTIFY_CHANNEL, event.tenant_id)
    announced.append((event.tenant_id, event.position, event.type))


def _row_to_event(row: Any) -> StoredEvent:
    return StoredEvent(
        row.id,
        row.tenant_id,
        row.position,
        row.type,
        row.incident_id,
        row.created_at,
        row.envelope,
        bool(row.test),
    )


async def read_after(
    conn: Any,
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
    cond = [events.c.tenant_id == tenant_id, events.c.position > after_position]
    if types:
        cond.append(events.c.type.in_(sorted(types)))
    if incident_id:
        cond.append(events.c.incident_id == incident_id)
    if since_ms is not None:
        cond.append(events.c.created_at >= since_ms)
    if until_position is not None:
        cond.append(events.c.position <= until_position)
    stmt = select(events).where(and_(*cond)).order_by(events.c.position).limit(limit)
    return [_row_to_event(r) for r in (await conn.execute(stmt)).all()]


async def find_event(conn: Any, tenant_id: str, event_id: str) -> StoredEvent | None:
    row = (
        await conn.execute(
            select(events).where(events.c.id == event_id, events.c.tenant_id == tenant_id)
        )
    ).first()
    return _row_to_event(row) if row else None


async def head_position(conn: Any, tenant_id: str) -> int:
    value = (
        await conn.execute(
            select(event_heads.c.position).where(event_heads.c.tenant_id == tenant_id)
        )
    ).scalar()
    return int(value or 0)


async def count_after(conn: Any, tenant_id: str, after_position: int, limit: int) -> int:
    """How many events follow a position, counting at most `limit + 1` (cheap bound check)."""
    sub = (
        select(events.c.position)
        .where(events.c.tenant_id == tenant_id, events.c.position > after_position)
        .limit(limit + 1)
        .subquery()
    )
    from sqlalchemy import func

    return int((await conn.execute(select(func.count()).select_from(sub))).scalar_one())

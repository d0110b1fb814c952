"""SQL of subscriptions, deliveries and the dispatcher's cursors (SQLAlchemy Core).

Every lookup names the tenant, so another tenant's id reads as absent. Writers take the
caller's `Tx`; readers take any connection. No rules here: those are in `webhook.service`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update

from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx
from causeflow.db.purge import delete_older
from causeflow.event import log
from causeflow.webhook.tables import attempts, deliveries, dispatch_cursors, subscriptions

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


async def list_deliveries(
    conn: Conn,
    tenant_id: str,
    subscription_id: str,
    *,
    status: str | None,
    event_types: frozenset[str] | None,
    before: tuple[int, str] | None,
    limit: int,
) -> list[AnyRow]:
    """Newest first, keyset on (created_at, id)."""
    cond = [deliveries.c.subscription_id == subscription_id, deliveries.c.tenant_id == tenant_id]
    if status is not None:
        cond.append(deliveries.c.status == status)
    if event_types:
        cond.append(deliveries.c.event_type.in_(sorted(event_types)))
    if before is not None:
        created, last_id = before
        cond.append(
            or_(
                deliveries.c.created_at < created,
                and_(deliveries.c.created_at == created, deliveries.c.id < last_id),
            )
        )
    stmt = (
        select(deliveries)
        .where(*cond)
        .order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
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
    tx: Tx, tenant_id: str, subscription_id: str, since_ms: int, until_ms: int, now_ms: int
) -> int:
    stmt = (
        update(deliveries)
        .where(
            deliveries.c.subscription_id == subscription_id,
            deliveries.c.tenant_id == tenant_id,
            deliveries.c.status == "failed",
            deliveries.c.created_at >= since_ms,
            deliveries.c.created_at <= until_ms,
        )
        .values(status="pending", next_attempt_at=now_ms, manual=False, updated_at=now_ms)
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
)


async def read_cursor(conn: Conn, tenant_id: str) -> tuple[int, int] | None:
    """The cursor's position and generation; None before the tenant's first batch."""
    row = (await conn.execute(_READ_CURSOR, {"b_tenant": tenant_id})).first()
    return None if row is None else (int(row[0]), int(row[1]))


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
    return int((await tx.execute(_ADVANCE_CURSOR, params)).rowcount) == 1


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


# --- retention -----------------------------------------------------------------------------


async def purge_attempts(tx: Tx, cutoff_ms: int, limit: int) -> int:
    """Up to `limit` attempts made before `cutoff_ms`; how many went."""
    return await delete_older(
        tx, attempts, key="id", time_col="created_at", cutoff=cutoff_ms, limit=limit
    )


async def purge_finished_deliveries(tx: Tx, cutoff_ms: int, limit: int) -> int:
    """Up to `limit` deliveries created before `cutoff_ms` that are no longer pending."""
    return await delete_older(
        tx,
        deliveries,
        key="id",
        time_col="created_at",
        cutoff=cutoff_ms,
        limit=limit,
        where=(deliveries.c.status != "pending",),
    )

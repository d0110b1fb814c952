"""A tenant's plan and limits as the gateway and the features need them: read and written here,
cached by the process context (`AppContext.tenant_plan`, `AppContext.tenant_limits`). The rule
that turns them into effective figures is pure (`ratelimit/limits.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, select

from causeflow.db.conn import Conn
from causeflow.db.dialect import Dialect
from causeflow.db.engine import Database, Tx
from causeflow.ratelimit.limits import NAMES, Stored
from causeflow.tenant.tables import tenant_limits, tenants


async def load_plan(db: Database, tenant_id: str) -> str:
    """The tenant's plan; "" when there is no such tenant."""
    async with db.read() as conn:
        plan = (
            await conn.execute(select(tenants.c.plan).where(tenants.c.id == tenant_id))
        ).scalar()
    return plan or ""


async def read_limits(conn: Conn, tenant_id: str) -> Stored | None:
    """The tenant's plan and overrides; None when there is no such tenant."""
    columns = [tenant_limits.c[name] for name in NAMES]
    stmt = (
        select(tenants.c.plan, *columns)
        .select_from(tenants.outerjoin(tenant_limits, tenant_limits.c.tenant_id == tenants.c.id))
        .where(tenants.c.id == tenant_id)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    mapping = row._mapping
    return Stored(mapping["plan"], {name: mapping[name] for name in NAMES})


async def load_limits(db: Database, tenant_id: str) -> Stored | None:
    async with db.read() as conn:
        return await read_limits(conn, tenant_id)


async def write_limits(
    tx: Tx, dialect: Dialect, tenant_id: str, changes: Mapping[str, int | None], now_ms: int
) -> None:
    """Set the given overrides (None resets one to the default); the others stay."""
    stmt = dialect.insert(tenant_limits).values(tenant_id=tenant_id, updated_at=now_ms, **changes)
    await tx.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id"], set_={"updated_at": now_ms, **changes}
        )
    )


RETENTIONS = ("event_retention_days", "delivery_retention_days")


async def retention_days_in_use(conn: Conn, column: str) -> list[int]:
    """The distinct retentions (days) tenants have of their own in `column` (one of
    `RETENTIONS`): one purge sweep each, however many tenants share it."""
    col = tenant_limits.c[column]
    stmt = select(col).where(col.is_not(None)).distinct().order_by(col)
    return [int(days) for days in (await conn.execute(stmt)).scalars().all()]


def tenants_with_retention(column: str, days: int | None = None) -> Select[Any]:
    """The ids of the tenants whose own retention in `column` is `days` (any, for None): a
    subquery, so a purge names any number of tenants in a statement of fixed size."""
    col = tenant_limits.c[column]
    cond = col.is_not(None) if days is None else col == days
    return select(tenant_limits.c.tenant_id).where(cond)


def tenants_without_retention(column: str) -> Select[Any]:
    """The ids of the tenants with no retention of their own in `column` (a subquery, like
    `tenants_with_retention`)."""
    return select(tenants.c.id).where(tenants.c.id.not_in(tenants_with_retention(column)))

"""A tenant's plan and limits as the gateway and the features need them: read and written here,
cached by the process context (`AppContext.tenant_plan`, `AppContext.tenant_limits`). The rule
that turns them into effective figures is pure (`ratelimit/limits.py`)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select

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


async def retention_overrides(conn: Conn) -> dict[str, tuple[int | None, int | None]]:
    """Each tenant with a retention of its own: (event days, delivery days), None = default."""
    c = tenant_limits.c
    stmt = select(c.tenant_id, c.event_retention_days, c.delivery_retention_days).where(
        (c.event_retention_days.is_not(None)) | (c.delivery_retention_days.is_not(None))
    )
    rows = (await conn.execute(stmt)).all()
    return {r.tenant_id: (r.event_retention_days, r.delivery_retention_days) for r in rows}

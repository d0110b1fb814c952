"""A tenant's plan as the gateway needs it: read here, cached by the process context."""

from __future__ import annotations

from sqlalchemy import select

from causeflow.db.engine import Database
from causeflow.tenant.tables import tenants


async def load_plan(db: Database, tenant_id: str) -> str:
    """The tenant's plan; "" when there is no such tenant."""
    async with db.read() as conn:
        plan = (
            await conn.execute(select(tenants.c.plan).where(tenants.c.id == tenant_id))
        ).scalar()
    return plan or ""

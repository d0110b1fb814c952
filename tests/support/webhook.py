"""Shared steps of the webhook tests: create subscriptions, append events, read deliveries, and
drive the dispatcher's own batch steps by hand (the webhook tests run without its loop)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from causeflow.context import AppContext
from causeflow.event.log import StoredEvent, append_event
from causeflow.webhook import repository as repo
from causeflow.webhook.dispatcher import _CursorMoved, _write_batch, dispatch_batch
from causeflow.webhook.subscriptions import subscription_cache
from causeflow.webhook.tables import deliveries
from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant

SUBS = "/v1/webhook-subscriptions"
HOOK_URL = "http://127.0.0.1:9/hook"  # the discard port: nothing ever answers


async def create_sub(service: Service, tenant: Tenant, **body: Any) -> dict[str, Any]:
    payload = {"url": HOOK_URL, "events": ["*"], **body}
    resp = await service.client.post(SUBS, headers=tenant.admin_headers, json=payload)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def append(
    service: Service, tenant: Tenant, event_type: str = "incident.created", **data: Any
) -> StoredEvent:
    """Append straight to the log (operational types cannot be published through the API)."""
    ctx = service.ctx
    async with ctx.db.transaction() as tx:
        return await append_event(
            tx,
            tenant_id=tenant.id,
            event_type=event_type,
            data=sample_data(event_type, **data),
            now_ms=ctx.clock.now_ms(),
        )


async def delivery_rows(service: Service, tenant: Tenant, **where: Any) -> list[Any]:
    cond = [deliveries.c.tenant_id == tenant.id]
    cond += [deliveries.c[k] == v for k, v in where.items()]
    async with service.ctx.db.read() as conn:
        stmt = select(deliveries).where(*cond).order_by(deliveries.c.created_at, deliveries.c.id)
        return list((await conn.execute(stmt)).all())


async def set_delivery(service: Service, delivery_id: str, **values: Any) -> None:
    async with service.ctx.db.transaction() as tx:
        await tx.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))


def error_paths(resp: Any) -> list[str]:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "validation_error"
    return [e["path"] for e in body["details"]["errors"]]


async def dispatch_pending(ctx: AppContext) -> int:
    """Run `dispatch_batch`, as the dispatcher's loop does, until every tenant's cursor has
    reached its log head; returns the deliveries made."""
    cache = subscription_cache(ctx)
    total = 0
    while True:
        async with ctx.db.read() as conn:
            behind = await repo.tenants_behind(conn)
        if not behind:
            return total
        for tenant_id in behind:
            while True:
                result = await dispatch_batch(ctx, cache, tenant_id)
                total += result.deliveries
                if not result.more:
                    break


async def commit_batch(
    ctx: AppContext,
    tenant_id: str,
    new: bool,
    cursor: int,
    new_cursor: int,
    rows: list[dict[str, Any]],
    generation: int = 0,
) -> bool:
    """Commit a batch planned earlier, as a dispatcher that read it then would: the cursor's
    compare-and-set and the deliveries (`_write_batch`); False if the cursor moved meanwhile."""
    try:
        async with ctx.db.transaction() as tx:
            await _write_batch(tx, tenant_id, new, cursor, new_cursor, rows, generation)
    except _CursorMoved:
        return False
    return True

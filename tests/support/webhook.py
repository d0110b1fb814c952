"""Shared steps of the webhook tests: create subscriptions, append events, read deliveries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from causeflow.event.log import StoredEvent, append_event
from causeflow.models import sample_data
from causeflow.webhook.tables import deliveries
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

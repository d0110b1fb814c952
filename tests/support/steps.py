"""Shared steps of the remediation, approval and catalog tests: incidents, proposals, keys,
and reading a tenant's log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from causeflow.event.tables import events as log_events
from tests.support.inproc import Service, Tenant


async def incident(service: Service, tenant: Tenant, title: str = "checkout is down") -> str:
    resp = await service.client.post(
        "/v1/incidents", headers=tenant.admin_headers, json={"title": title, "severity": "high"}
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def propose(
    service: Service,
    tenant: Tenant,
    incident_id: str,
    *,
    requires_approval: bool = True,
    headers: dict[str, str] | None = None,
    title: str = "roll back the deploy",
) -> dict[str, Any]:
    resp = await service.client.post(
        f"/v1/incidents/{incident_id}/remediations",
        headers=headers or tenant.key_headers,
        json={
            "title": title,
            "steps": ["kubectl rollout undo deploy/checkout", "watch the error rate"],
            "requiresApproval": requires_approval,
        },
    )
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def api_key(service: Service, tenant: Tenant, *scopes: str) -> dict[str, str]:
    resp = await service.client.post(
        "/v1/api-keys", headers=tenant.admin_headers, json={"name": "k", "scopes": list(scopes)}
    )
    assert resp.status_code == 201, resp.text
    return {"X-API-Key": resp.json()["key"]}


async def events(
    service: Service, tenant: Tenant, *, headers: dict[str, str] | None = None, **params: str
) -> list[dict[str, Any]]:
    """Every envelope of the tenant's log (filtered by `params`), in log order."""
    out: list[dict[str, Any]] = []
    query: dict[str, str] = {"limit": "100", **params}
    while True:
        resp = await service.client.get(
            "/v1/events", headers=headers or tenant.key_headers, params=query
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        out += body["items"]
        if not body["cursor"]:
            return out
        query["cursor"] = body["cursor"]


async def events_after(service: Service, tenant: Tenant, after: str | None) -> list[dict[str, Any]]:
    """The envelopes appended after event `after` (None: all), in log order."""
    return await events(service, tenant, **({"after": after} if after else {}))


async def last_event_id(service: Service, tenant: Tenant) -> str | None:
    """The id of the tenant's newest event (read from storage: cheaper than paging the log)."""
    stmt = (
        select(log_events.c.id)
        .where(log_events.c.tenant_id == tenant.id)
        .order_by(log_events.c.position.desc())
        .limit(1)
    )
    async with service.ctx.db.read() as conn:
        return (await conn.execute(stmt)).scalar()


async def incident_status(service: Service, tenant: Tenant, incident_id: str) -> str:
    resp = await service.client.get(f"/v1/incidents/{incident_id}", headers=tenant.admin_headers)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["status"])


def error_code(resp: Any, status: int) -> str:
    assert resp.status_code == status, resp.text
    return str(resp.json()["error"])

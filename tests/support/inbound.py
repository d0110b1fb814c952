"""Helpers for the inbound tests: posting alerts, signing bodies, counting stored rows."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from causeflow.event.tables import events
from causeflow.incident.tables import alerts, incidents, open_fingerprints
from causeflow.ingest.tables import inbound_deliveries
from tests.support.inproc import Service, Tenant

TABLES = {
    "alerts": alerts,
    "incidents": incidents,
    "events": events,
    "open_fingerprints": open_fingerprints,
    "inbound_deliveries": inbound_deliveries,
}


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def alert(external_id: str = "disk-full", status: str = "firing", **extra: Any) -> dict[str, Any]:
    return {"externalId": external_id, "title": f"Alert {external_id}", "status": status, **extra}


async def post(
    service: Service,
    tenant: Tenant,
    body: Any,
    *,
    provider: str = "custom",
    headers: dict[str, str] | None = None,
    key: str | None = None,
    send_key: bool = True,
    tenant_id: str | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """POST an alert body (bytes as is, anything else as JSON); `X-API-Key` is the tenant's
    ingest key unless `key` names another or `send_key` is False."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {"Content-Type": "application/json"}
    if send_key:
        sent["X-API-Key"] = key or tenant.ingest_key
    sent.update(headers or {})
    return await service.client.post(
        f"/v1/webhooks/{tenant_id or tenant.id}/{provider}",
        content=raw,
        headers=sent,
        params=params,
    )


async def count_rows(service: Service) -> dict[str, int]:
    out = {}
    async with service.ctx.db.read() as conn:
        for name, table in TABLES.items():
            out[name] = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
    return out


def actions(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 202, resp.text
    return [a["action"] for a in resp.json()["alerts"]]

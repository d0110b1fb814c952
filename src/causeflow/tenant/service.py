"""Tenants: provisioning (with its first credentials), settings, and their `tenant.*` events.

Functions take the caller's transaction; the tenant row and its event commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select, update

from causeflow import ids
from causeflow.auth import apikeys
from causeflow.auth.crypto import SecretBox
from causeflow.clock import ms_to_rfc3339
from causeflow.context import AppContext
from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx
from causeflow.errors import NotFound
from causeflow.event.log import append_event
from causeflow.jsonutil import dumps_str, loads
from causeflow.tenant.tables import tenants

INBOUND_SECRET_NAMES = ("sentry", "pagerduty", "grafana")


def tenant_view(row: AnyRow) -> dict[str, Any]:
    inbound = loads(row.inbound or "{}")
    return {
        "id": row.id,
        "name": row.name,
        "plan": row.plan,
        "inbound": {
            "requireSignature": bool(inbound.get("requireSignature", False)),
            "snsTopicArns": inbound.get("snsTopicArns", []),
            "secretsConfigured": inbound.get("secretsConfigured", []),
        },
        "createdAt": ms_to_rfc3339(row.created_at),
        "updatedAt": ms_to_rfc3339(row.updated_at),
    }


async def create_tenant(tx: Tx, *, name: str, plan: str, now_ms: int) -> dict[str, Any]:
    tenant_id = ids.new_id("ten", now_ms)
    await tx.execute(
        tenants.insert().values(
            id=tenant_id, name=name, plan=plan, inbound="{}", created_at=now_ms, updated_at=now_ms
        )
    )
    await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="tenant.created",
        now_ms=now_ms,
        data={
            "tenantId": tenant_id,
            "name": name,
            "plan": plan,
            "createdAt": ms_to_rfc3339(now_ms),
        },
    )
    row = (await tx.execute(select(tenants).where(tenants.c.id == tenant_id))).one()
    return tenant_view(row)


@dataclass
class Provisioned:
    tenant: dict[str, Any]
    api_key: str
    ingest_key: str
    webhook_secret: str
    admin_token: str

    def as_json(self) -> dict[str, str]:
        return {
            "tenantId": self.tenant["id"],
            "apiKey": self.api_key,
            "ingestKey": self.ingest_key,
            "webhookSecret": self.webhook_secret,
            "adminToken": self.admin_token,
        }


async def provision(ctx: AppContext, *, name: str, plan: str | None = None) -> Provisioned:
    """A tenant with an all-scopes key, an ingest key with its signing secret, an admin JWT."""
    from causeflow_sdk.signatures import generate_secret

    now = ctx.clock.now_ms()
    webhook_secret = generate_secret()
    async with ctx.db.transaction() as tx:
        tenant = await create_tenant(
            tx, name=name, plan=plan or ctx.settings.default_plan, now_ms=now
        )
        _, api_key = await apikeys.create_key(
            tx,
            tenant_id=tenant["id"],
            name="default",
            now_ms=now,
            box=ctx.keys.box,
            scopes=["admin", "events:publish", "events:read", "alerts:ingest"],
        )
        _, ingest_key = await apikeys.create_key(
            tx,
            tenant_id=tenant["id"],
            name="ingest",
            scopes=["alerts:ingest"],
            now_ms=now,
            box=ctx.keys.box,
            webhook_secret=webhook_secret,
        )
    token = ctx.tokens.mint(
        tenant_id=tenant["id"],
        role="admin",
        now=ctx.clock.now(),
        ttl=ctx.settings.admin_token_ttl_seconds,
        email=None,
        subject=f"admin@{tenant['id']}",
    )
    return Provisioned(tenant, api_key, ingest_key, webhook_secret, token)


async def get_tenant_row(conn: Conn, tenant_id: str) -> AnyRow:
    row = (await conn.execute(select(tenants).where(tenants.c.id == tenant_id))).first()
    if row is None:
        raise NotFound("no such tenant")
    return row


async def list_tenants(conn: Conn, *, after_id: str | None, limit: int) -> list[dict[str, Any]]:
    cond = [tenants.c.id > after_id] if after_id else []
    stmt = select(tenants).where(and_(True, *cond)).order_by(tenants.c.id).limit(limit)
    return [tenant_view(r) for r in (await conn.execute(stmt)).all()]


async def update_tenant(
    tx: Tx,
    tenant_id: str,
    *,
    box: SecretBox,
    now_ms: int,
    name: str | None = None,
    plan: str | None = None,
    inbound: dict[str, Any] | None = None,
) -> dict[str, Any]:
    row = (await tx.execute(select(tenants).where(tenants.c.id == tenant_id))).first()
    if row is None:
        raise NotFound("no such tenant")
    values: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    if name is not None and name != row.name:
        values["name"] = changes["name"] = name
    if plan is not None and plan != row.plan:
        values["plan"] = changes["plan"] = plan
    if inbound is not None:
        current = loads(row.inbound or "{}")
        secrets = loads(box.open(row.inbound_secrets_enc)) if row.inbound_secrets_enc else {}
        if "requireSignature" in inbound and inbound["requireSignature"] is not None:
            current["requireSignature"] = bool(inbound["requireSignature"])
            changes["inbound.requireSignature"] = current["requireSignature"]
        if inbound.get("snsTopicArns") is not None:
            current["snsTopicArns"] = list(inbound["snsTopicArns"])
            changes["inbound.snsTopicArns"] = current["snsTopicArns"]
        for key, value in (inbound.get("secrets") or {}).items():
            if value:
                secrets[key] = value
            else:
                secrets.pop(key, None)
            # secrets are write-only: the event says that one changed, never its value
            changes[f"inbound.secrets.{key}"] = "set" if value else "removed"
        current["secretsConfigured"] = sorted(secrets)
        values["inbound"] = dumps_str(current)
        values["inbound_secrets_enc"] = box.seal(dumps_str(secrets)) if secrets else None
    if values:
        values["updated_at"] = now_ms
        await tx.execute(update(tenants).where(tenants.c.id == tenant_id).values(**values))
    if changes:
        await append_event(
            tx,
            tenant_id=tenant_id,
            event_type="tenant.updated",
            now_ms=now_ms,
            data={"tenantId": tenant_id, "changes": changes},
        )
    row = (await tx.execute(select(tenants).where(tenants.c.id == tenant_id))).one()
    return tenant_view(row)


async def inbound_settings(
    conn: Conn, tenant_id: str, box: SecretBox
) -> tuple[dict[str, Any], dict[str, str]] | None:
    """(inbound settings, provider secrets) for the inbound endpoint; None if no such tenant."""
    row = (await conn.execute(select(tenants).where(tenants.c.id == tenant_id))).first()
    if row is None:
        return None
    secrets = loads(box.open(row.inbound_secrets_enc)) if row.inbound_secrets_enc else {}
    return loads(row.inbound or "{}"), secrets

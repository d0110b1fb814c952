"""Integrations (connected third-party tools) and their `integration.*` events.

`config` may hold credentials (API tokens, webhook URLs with secrets in them), and nothing
tells a secret field from a harmless one, so a config is write-only as a whole: it is stored
sealed with the service's secret box and reads show only its key names (`configKeys`).
Triggers store their config the same way (`seal_config`). Disconnecting keeps the row
(status `disconnected`) for the record; disconnecting it again is 409.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, select, update

from causeflow import ids
from causeflow.auth.crypto import SecretBox
from causeflow.clock import ms_to_rfc3339
from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx
from causeflow.db.lookup import tenant_row
from causeflow.errors import Conflict
from causeflow.event.log import append_event, next_positions
from causeflow.integration.tables import integrations
from causeflow.jsonutil import dumps_str, loads


def seal_config(box: SecretBox, config: dict[str, Any] | None) -> str:
    """The stored form of a config: its key names in clear, the whole object sealed."""
    if not config:
        return "{}"
    # The standard json module: a config is small, and it round-trips any JSON number exactly
    # (orjson refuses integers beyond 64 bits).
    plain = json.dumps(config, separators=(",", ":"), ensure_ascii=False)
    return dumps_str({"keys": sorted(config), "sealed": box.seal(plain)})


def config_keys(stored: str | None) -> list[str]:
    return list(loads(stored or "{}").get("keys", []))


def open_config(box: SecretBox, stored: str | None) -> dict[str, Any]:
    """The config as given (for the code that uses the integration; never for responses)."""
    sealed = loads(stored or "{}").get("sealed")
    return json.loads(box.open(sealed)) if sealed else {}  # type: ignore[no-any-return]


def integration_view(row: AnyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "provider": row.provider,
        "name": row.name,
        "status": row.status,
        "configKeys": config_keys(row.config),
        "connectedBy": row.connected_by,
        "disconnectedBy": row.disconnected_by,
        "createdAt": ms_to_rfc3339(row.created_at),
        "updatedAt": ms_to_rfc3339(row.updated_at),
    }


async def _row(conn: Conn, tenant_id: str, integration_id: str) -> AnyRow:
    return await tenant_row(
        conn, integrations, tenant_id, integration_id, prefix="int", what="integration"
    )


async def get_integration(conn: Conn, tenant_id: str, integration_id: str) -> dict[str, Any]:
    return integration_view(await _row(conn, tenant_id, integration_id))


async def list_integrations(
    conn: Conn, tenant_id: str, *, status: str | None, after_id: str | None, limit: int
) -> list[dict[str, Any]]:
    cond = [integrations.c.tenant_id == tenant_id]
    if status:
        cond.append(integrations.c.status == status)
    if after_id:
        cond.append(integrations.c.id > after_id)
    stmt = select(integrations).where(and_(*cond)).order_by(integrations.c.id).limit(limit)
    return [integration_view(r) for r in (await conn.execute(stmt)).all()]


async def connect_integration(
    tx: Tx,
    tenant_id: str,
    *,
    provider: str,
    name: str | None,
    config: dict[str, Any] | None,
    actor: str,
    box: SecretBox,
    now_ms: int,
) -> dict[str, Any]:
    integration_id = ids.new_id("int", now_ms)
    await tx.execute(
        integrations.insert().values(
            id=integration_id,
            tenant_id=tenant_id,
            provider=provider,
            name=name,
            config=seal_config(box, config),
            status="connected",
            connected_by=actor,
            created_at=now_ms,
            updated_at=now_ms,
        )
    )
    await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="integration.connected",
        now_ms=now_ms,
        data={"integrationId": integration_id, "provider": provider, "connectedBy": actor},
    )
    return await get_integration(tx.conn, tenant_id, integration_id)


async def disconnect_integration(
    tx: Tx, tenant_id: str, integration_id: str, *, actor: str, now_ms: int
) -> dict[str, Any]:
    # The head lock first: two concurrent disconnects then see each other's commit.
    await next_positions(tx, tenant_id, 0)
    row = await _row(tx.conn, tenant_id, integration_id)
    stmt = (
        update(integrations)
        .where(integrations.c.id == row.id, integrations.c.status == "connected")
        .values(status="disconnected", disconnected_by=actor, updated_at=now_ms)
    )
    if (await tx.execute(stmt)).rowcount != 1:
        raise Conflict(
            "this integration is already disconnected",
            code="integration_disconnected",
            details={"status": row.status},
        )
    await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="integration.disconnected",
        now_ms=now_ms,
        data={"integrationId": row.id, "provider": row.provider, "disconnectedBy": actor},
    )
    return await get_integration(tx.conn, tenant_id, integration_id)

"""Automation triggers, the incoming events they receive, and their `trigger.*` events.

A trigger's slug is unique within its tenant (checked under the tenant's event-log head lock,
which serializes creations). Its `config` is sealed like an integration's and reads show only
its key names. An incoming event is kept in `trigger_events` under the id of the
`trigger.event_received` event it produced, so the two can be joined; deleting a trigger
deletes its received events with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, select

from causeflow import ids
from causeflow.auth.crypto import SecretBox
from causeflow.clock import ms_to_rfc3339
from causeflow.db.engine import Tx
from causeflow.db.lookup import tenant_row
from causeflow.errors import Conflict
from causeflow.event.log import StoredEvent, append_event, next_positions
from causeflow.integration.service import config_keys, seal_config
from causeflow.trigger.tables import trigger_events, triggers


def trigger_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "slug": row.slug,
        "provider": row.provider,
        "action": row.action,
        "configKeys": config_keys(row.config),
        "createdAt": ms_to_rfc3339(row.created_at),
    }


async def _row(conn: Any, tenant_id: str, trigger_id: str) -> Any:
    return await tenant_row(conn, triggers, tenant_id, trigger_id, prefix="trg", what="trigger")


async def get_trigger(conn: Any, tenant_id: str, trigger_id: str) -> dict[str, Any]:
    return trigger_view(await _row(conn, tenant_id, trigger_id))


async def list_triggers(
    conn: Any, tenant_id: str, *, after_id: str | None, limit: int
) -> list[dict[str, Any]]:
    cond = [triggers.c.tenant_id == tenant_id]
    if after_id:
        cond.append(triggers.c.id > after_id)
    stmt = select(triggers).where(and_(*cond)).order_by(triggers.c.id).limit(limit)
    return [trigger_view(r) for r in (await conn.execute(stmt)).all()]


def _data(row: Any) -> dict[str, Any]:
    return {"triggerId": row.id, "triggerSlug": row.slug, "provider": row.provider}


async def create_trigger(
    tx: Tx,
    tenant_id: str,
    *,
    slug: str,
    provider: str,
    action: str,
    config: dict[str, Any] | None,
    box: SecretBox,
    now_ms: int,
) -> dict[str, Any]:
    await next_positions(tx, tenant_id, 0)  # serializes slug checks of this tenant
    taken = (
        await tx.execute(
            select(triggers.c.id).where(triggers.c.tenant_id == tenant_id, triggers.c.slug == slug)
        )
    ).first()
    if taken is not None:
        raise Conflict(
            "a trigger with this slug already exists",
            code="trigger_exists",
            details={"triggerId": taken.id},
        )
    trigger_id = ids.new_id("trg", now_ms)
    await tx.execute(
        triggers.insert().values(
            id=trigger_id,
            tenant_id=tenant_id,
            slug=slug,
            provider=provider,
            action=action,
            config=seal_config(box, config),
            created_at=now_ms,
        )
    )
    row = await _row(tx.conn, tenant_id, trigger_id)
    await append_event(
        tx, tenant_id=tenant_id, event_type="trigger.created", now_ms=now_ms, data=_data(row)
    )
    return trigger_view(row)


async def delete_trigger(tx: Tx, tenant_id: str, trigger_id: str, *, now_ms: int) -> None:
    await next_positions(tx, tenant_id, 0)  # a concurrent delete then finds nothing: 404
    row = await _row(tx.conn, tenant_id, trigger_id)
    await tx.execute(delete(trigger_events).where(trigger_events.c.trigger_id == row.id))
    await tx.execute(delete(triggers).where(triggers.c.id == row.id))
    await append_event(
        tx, tenant_id=tenant_id, event_type="trigger.deleted", now_ms=now_ms, data=_data(row)
    )


async def receive_event(
    tx: Tx, tenant_id: str, trigger_id: str, *, payload: str, now_ms: int
) -> StoredEvent:
    """Record an incoming event (its JSON text as received); emits `trigger.event_received`."""
    await next_positions(tx, tenant_id, 0)  # the trigger cannot be deleted under us
    row = await _row(tx.conn, tenant_id, trigger_id)
    stored = await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="trigger.event_received",
        now_ms=now_ms,
        data={**_data(row), "actionTaken": row.action},
    )
    await tx.execute(
        trigger_events.insert().values(
            id=stored.id,
            tenant_id=tenant_id,
            trigger_id=row.id,
            payload=payload,
            action_taken=row.action,
            received_at=now_ms,
        )
    )
    return stored

"""Automation triggers, the incoming events they receive, and their `trigger.*` events.

A trigger's slug is unique within its tenant (checked under the tenant's event-log head lock,
which serializes creations). Its `config` is sealed like an integration's and reads show only
its key names; the config of an action the service runs is checked when the trigger is
created (trigger/actions.py). An incoming event runs the trigger's action in the same
transaction as its `trigger.event_received` event, whose `actionTaken` says what happened:
`incident_created` / `incident_attached` (the event went through the inbound dedup rules as an
alert of the trigger's provider), `change_recorded` (the change was added to the service's
unresolved incidents), `ignored` (the event did not match or lacked what the action needs) or
`unknown_trigger` (an action the service does not run). The event is kept in `trigger_events`
under the id of the `trigger.event_received` event it produced, so the two can be joined;
deleting a trigger deletes its received events with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, select

from causeflow import ids
from causeflow.auth.crypto import SecretBox
from causeflow.clock import ms_to_rfc3339
from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx
from causeflow.db.lookup import tenant_row
from causeflow.errors import Conflict
from causeflow.event.log import StoredEvent, append_event, next_positions
from causeflow.incident import repository as incident_store
from causeflow.incident.lifecycle import RELEASES_FINGERPRINTS
from causeflow.ingest.batch import Delivery, apply_batch
from causeflow.ingest.providers.base import NormalizedAlert, ParsedPayload
from causeflow.integration.service import config_keys, open_config, seal_config
from causeflow.jsonutil import dumps_str, loads
from causeflow.trigger import actions
from causeflow.trigger.tables import trigger_events, triggers

# A change is recorded on at most this many unresolved incidents of its service (oldest first).
MAX_CHANGE_INCIDENTS = 100


def trigger_view(row: AnyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "slug": row.slug,
        "provider": row.provider,
        "action": row.action,
        "configKeys": config_keys(row.config),
        "createdAt": ms_to_rfc3339(row.created_at),
    }


async def require_trigger(conn: Conn, tenant_id: str, trigger_id: str) -> AnyRow:
    """The tenant's trigger, else NotFound `trigger_not_found`."""
    return await tenant_row(conn, triggers, tenant_id, trigger_id, prefix="trg", what="trigger")


async def get_trigger(conn: Conn, tenant_id: str, trigger_id: str) -> dict[str, Any]:
    return trigger_view(await require_trigger(conn, tenant_id, trigger_id))


async def list_triggers(
    conn: Conn, tenant_id: str, *, after_id: str | None, limit: int
) -> list[dict[str, Any]]:
    cond = [triggers.c.tenant_id == tenant_id]
    if after_id:
        cond.append(triggers.c.id > after_id)
    stmt = select(triggers).where(and_(*cond)).order_by(triggers.c.id).limit(limit)
    return [trigger_view(r) for r in (await conn.execute(stmt)).all()]


def _data(row: AnyRow) -> dict[str, Any]:
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
    actions.check_config(action, config)  # 422 before anything is written
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
    row = await require_trigger(tx.conn, tenant_id, trigger_id)
    await append_event(
        tx, tenant_id=tenant_id, event_type="trigger.created", now_ms=now_ms, data=_data(row)
    )
    return trigger_view(row)


async def delete_trigger(tx: Tx, tenant_id: str, trigger_id: str, *, now_ms: int) -> None:
    await next_positions(tx, tenant_id, 0)  # a concurrent delete then finds nothing: 404
    row = await require_trigger(tx.conn, tenant_id, trigger_id)
    await tx.execute(delete(trigger_events).where(trigger_events.c.trigger_id == row.id))
    await tx.execute(delete(triggers).where(triggers.c.id == row.id))
    await append_event(
        tx, tenant_id=tenant_id, event_type="trigger.deleted", now_ms=now_ms, data=_data(row)
    )


async def _open_or_attach(
    tx: Tx, tenant_id: str, provider: str, alert: NormalizedAlert, ttl_seconds: int, now_ms: int
) -> tuple[str, str]:
    """The alert through the inbound path's own transaction step (dedup by tenant, provider and
    fingerprint); (actionTaken, incident id)."""
    delivery = Delivery(tenant_id, provider, ParsedPayload([alert], None), now_ms)
    [stored] = await apply_batch(tx, [delivery], ttl_seconds)
    [result] = loads(stored.body)["alerts"]
    taken = "incident_created" if result["action"] == "created" else "incident_attached"
    return taken, str(result["incidentId"])


async def _record_change(
    tx: Tx, tenant_id: str, trigger: AnyRow, change: actions.Change, now_ms: int
) -> list[str]:
    """The change as an entry (status `change`) among the alerts of each incident of its
    service that is not resolved or closed; their ids, oldest incident first."""
    incident_ids = await incident_store.incidents_of_service(
        tx, tenant_id, change.service, excluding=RELEASES_FINGERPRINTS, limit=MAX_CHANGE_INCIDENTS
    )
    if not incident_ids:
        return []
    await incident_store.insert_alerts(
        tx,
        [
            {
                "id": ids.new_id("alr", now_ms),
                "tenant_id": tenant_id,
                "incident_id": incident_id,
                "provider": trigger.provider,
                "fingerprint": change.change_id,
                "status": "change",
                "title": change.title,
                "description": change.description,
                "severity": "info",
                "service": change.service,
                "environment": change.environment,
                "labels": dumps_str({"trigger": trigger.slug}),
                "url": change.url,
                "raw": dumps_str(change.raw),
                "received_at": now_ms,
            }
            for incident_id in incident_ids
        ],
    )
    await incident_store.touch_incidents(tx, incident_ids, now_ms)
    return incident_ids


async def receive_event(
    tx: Tx,
    tenant_id: str,
    trigger_id: str,
    *,
    payload: str,
    document: dict[str, Any],
    box: SecretBox,
    ttl_seconds: int,
    now_ms: int,
) -> StoredEvent:
    """Run the trigger's action on an incoming event (its JSON text as received, and decoded)
    and emit `trigger.event_received` saying what was done, all in the caller's transaction."""
    await next_positions(tx, tenant_id, 0)  # the trigger cannot be deleted under us
    row = await require_trigger(tx.conn, tenant_id, trigger_id)
    data: dict[str, Any] = _data(row)
    taken = actions.UNKNOWN_TRIGGER
    if row.action in actions.ACTIONS:
        plan = actions.plan(row.action, open_config(box, row.config), document)
        taken = actions.IGNORED
        if plan.alert is not None:
            taken, data["incidentId"] = await _open_or_attach(
                tx, tenant_id, row.provider, plan.alert, ttl_seconds, now_ms
            )
        elif plan.change is not None:
            recorded = await _record_change(tx, tenant_id, row, plan.change, now_ms)
            if recorded:
                taken, data["incidentIds"] = "change_recorded", recorded
    stored = await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="trigger.event_received",
        now_ms=now_ms,
        data={**data, "actionTaken": taken},
    )
    await tx.execute(
        trigger_events.insert().values(
            id=stored.id,
            tenant_id=tenant_id,
            trigger_id=row.id,
            payload=payload,
            action_taken=taken,
            received_at=now_ms,
        )
    )
    return stored

"""Incidents: creation, reads, and status moves with their `incident.*` events.

Every function that writes takes the caller's transaction and appends its events in it, so a
change and its event commit together. Lock order, to keep PostgreSQL free of deadlocks: the
tenant's event head first (`event.log.lock_log_head`), then incident rows. On SQLite one
writer runs at a time and no row locks exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import RowMapping

from causeflow import ids
from causeflow.clock import ms_to_rfc3339
from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx
from causeflow.errors import NotFound
from causeflow.event.log import NewEvent, append_event, append_events, lock_log_head, read_after
from causeflow.incident import repository
from causeflow.incident.lifecycle import RELEASES_FINGERPRINTS, auto_target, check_move
from causeflow.jsonutil import loads

# GET /v1/incidents/{id} shows this much inline; the log has the rest (GET /v1/events?incidentId=).
ALERTS_SHOWN = 100
EVENTS_SHOWN = 1000


def incident_view(row: Mapping[str, Any] | RowMapping) -> dict[str, Any]:
    resolved_at = row["resolved_at"]
    return {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "severity": row["severity"],
        "status": row["status"],
        "source": row["source"],
        "fingerprint": row["fingerprint"],
        "service": row["service"],
        "environment": row["environment"],
        "alertCount": row["alert_count"],
        "createdAt": ms_to_rfc3339(row["created_at"]),
        "updatedAt": ms_to_rfc3339(row["updated_at"]),
        "resolvedAt": ms_to_rfc3339(resolved_at) if resolved_at is not None else None,
    }


def alert_view(row: Mapping[str, Any] | RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "provider": row["provider"],
        "fingerprint": row["fingerprint"],
        "status": row["status"],
        "title": row["title"],
        "description": row["description"],
        "severity": row["severity"],
        "service": row["service"],
        "environment": row["environment"],
        "labels": loads(row["labels"] or "{}"),
        "url": row["url"],
        "receivedAt": ms_to_rfc3339(row["received_at"]),
    }


def new_incident_row(
    tenant_id: str,
    *,
    title: str,
    severity: str,
    source: str,
    now_ms: int,
    description: str | None = None,
    service: str | None = None,
    environment: str | None = None,
    fingerprint: str | None = None,
    alert_count: int = 0,
) -> dict[str, Any]:
    """The row of a new open incident, with a new id (what `create_incident` inserts)."""
    return {
        "id": ids.new_id("inc", now_ms),
        "tenant_id": tenant_id,
        "title": title,
        "description": description,
        "severity": severity,
        "status": "open",
        "source": source,
        "fingerprint": fingerprint,
        "service": service,
        "environment": environment,
        "alert_count": alert_count,
        "created_at": now_ms,
        "updated_at": now_ms,
        "resolved_at": None,
    }


def created_event(row: Mapping[str, Any]) -> NewEvent:
    """The incident.created event of a new incident row. Pure."""
    return NewEvent(
        "incident.created",
        {
            "incidentId": row["id"],
            "title": row["title"],
            "severity": row["severity"],
            "status": "open",
            "source": row["source"],
        },
        now_ms=row["created_at"],
    )


async def create_incident(tx: Tx, row: dict[str, Any]) -> dict[str, Any]:
    """Insert an open incident (a `new_incident_row`) and emit incident.created; its view."""
    await repository.insert_incidents(tx, [row])
    tenant_id, now_ms = row["tenant_id"], row["created_at"]
    await append_events(tx, tenant_id=tenant_id, items=[created_event(row)], now_ms=now_ms)
    return incident_view(row)


async def get_incident(conn: Conn, tenant_id: str, incident_id: str) -> dict[str, Any]:
    row = await repository.incident_row(conn, tenant_id, incident_id)
    if row is None:
        raise NotFound("no such incident", code="incident_not_found")
    return incident_view(row._mapping)


async def get_incident_detail(conn: Conn, tenant_id: str, incident_id: str) -> dict[str, Any]:
    """The incident with its latest alerts (oldest first) and its events in log order."""
    view = await get_incident(conn, tenant_id, incident_id)
    recent = await repository.latest_alerts(conn, tenant_id, incident_id, ALERTS_SHOWN)
    events = await read_after(conn, tenant_id, 0, incident_id=incident_id, limit=EVENTS_SHOWN)
    view["alerts"] = [alert_view(r._mapping) for r in reversed(recent)]
    # Stored envelopes are orjson output, so loading and re-encoding gives back the same bytes.
    view["events"] = [loads(e.envelope) for e in events]
    return view


async def list_incidents(
    conn: Conn,
    tenant_id: str,
    *,
    statuses: frozenset[str] | None,
    severities: frozenset[str] | None,
    newest_first: bool,
    after: tuple[int, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """One keyset page ordered by (createdAt, id), newest or oldest first."""
    rows = await repository.incident_page(
        conn,
        tenant_id,
        statuses=statuses,
        severities=severities,
        newest_first=newest_first,
        after=after,
        limit=limit,
    )
    return [incident_view(r._mapping) for r in rows]


async def reclaim_fingerprint(tx: Tx, row: AnyRow) -> bool:
    """A reopened incident takes its (tenant, provider, fingerprint) key back, so a re-fire
    of its alert attaches to it again; False when it has no key or when another incident
    opened for the key meanwhile, which keeps it (the newer claim wins).

    The caller holds the tenant's log head, like every writer of `open_fingerprints`."""
    if row.fingerprint is None or row.source == "manual":
        return False
    claim = {
        "tenant_id": row.tenant_id,
        "provider": row.source,
        "fingerprint": row.fingerprint,
        "incident_id": row.id,
    }
    return await repository.reclaim_fingerprint(tx, claim)


async def _apply_move(
    tx: Tx, row: AnyRow, new_status: str, now_ms: int, reason: str | None
) -> dict[str, Any]:
    values: dict[str, Any] = {"status": new_status, "updated_at": now_ms}
    if new_status == "resolved":
        values["resolved_at"] = now_ms
    elif new_status == "open":
        values["resolved_at"] = None  # reopened
    await repository.set_incident(tx, row.id, values)
    if new_status in RELEASES_FINGERPRINTS:
        # The alerts of a resolved/closed incident no longer attach to it: a re-fire opens a
        # new incident.
        await repository.release_fingerprints(tx, row.id)
    elif row.status in RELEASES_FINGERPRINTS:
        await reclaim_fingerprint(tx, row)
    data: dict[str, Any] = {
        "incidentId": row.id,
        "previousStatus": row.status,
        "newStatus": new_status,
        "title": row.title,
    }
    if reason:
        data["reason"] = reason
    await append_event(
        tx,
        tenant_id=row.tenant_id,
        event_type="incident.status_changed",
        now_ms=now_ms,
        data=data,
    )
    return incident_view({**row._mapping, **values})


async def move_incident(
    tx: Tx,
    tenant_id: str,
    incident_id: str,
    new_status: str,
    now_ms: int,
    *,
    reason: str | None = None,
) -> dict[str, Any]:
    """Move by the table (409 invalid_transition otherwise) and emit incident.status_changed."""
    await lock_log_head(tx, tenant_id)
    row = await repository.incident_row(tx.conn, tenant_id, incident_id, lock=True)
    if row is None:
        raise NotFound("no such incident", code="incident_not_found")
    check_move(row.status, new_status)
    return await _apply_move(tx, row, new_status, now_ms, reason)


async def auto_move(
    tx: Tx,
    tenant_id: str,
    incident_id: str,
    trigger: str,
    now_ms: int,
    before_apply: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any] | None:
    """One of the service's own moves (lifecycle.AUTO_MOVES); None when it does not apply.

    `before_apply` is awaited once the move is certain, before anything is written (an event
    effect appends the events that must precede the move's own there)."""
    await lock_log_head(tx, tenant_id)
    row = await repository.incident_row(tx.conn, tenant_id, incident_id, lock=True)
    if row is None:
        return None
    target = auto_target(trigger, row.status)
    if target is None:
        return None
    if before_apply is not None:
        await before_apply()
    return await _apply_move(tx, row, target, now_ms, trigger)


async def _on_investigation_progress(
    tx: Tx,
    tenant_id: str,
    data: dict[str, Any],
    now_ms: int,
    before_append: Callable[[], Awaitable[None]],
) -> None:
    incident_id = data.get("incidentId")
    if isinstance(incident_id, str):
        await auto_move(tx, tenant_id, incident_id, "investigation_progress", now_ms, before_append)


def register_effects(register_effect: Callable[[str, Any], None]) -> None:
    """Hook the incident lifecycle into published events (idempotent), through the publishing
    feature's `register_effect` that the composition root hands in."""
    register_effect("investigation.progress", _on_investigation_progress)

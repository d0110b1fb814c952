"""The SQL of inbound alerts: delivery ids, open fingerprints, alert rows.

Statements are built once with bind parameters and executed with a parameter dict: building a
Core statement per call costs several times more than running it, and this is the hottest
write path of the service. Everything runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import bindparam, select, update

from causeflow.db.engine import Tx
from causeflow.incident.tables import alerts, incidents, open_fingerprints
from causeflow.ingest.providers.base import NormalizedAlert
from causeflow.ingest.tables import inbound_deliveries
from causeflow.jsonutil import dumps_str

_D = inbound_deliveries.c
_F = open_fingerprints.c
_DELIVERY = (
    _D.tenant_id == bindparam("b_tenant"),
    _D.provider == bindparam("b_provider"),
    _D.delivery_id == bindparam("b_delivery"),
)
SEEN_DELIVERY = select(_D.response, _D.received_at).where(*_DELIVERY)
TAKE_OVER_DELIVERY = (
    update(inbound_deliveries)
    .where(*_DELIVERY, _D.received_at == bindparam("b_seen_at"))
    .values(received_at=bindparam("b_now"), response="")
)
SET_RESPONSE = update(inbound_deliveries).where(*_DELIVERY).values(response=bindparam("b_body"))
OPEN_INCIDENT = select(_F.incident_id).where(
    _F.tenant_id == bindparam("b_tenant"),
    _F.provider == bindparam("b_provider"),
    _F.fingerprint == bindparam("b_fingerprint"),
)
# One (tenant, provider) per statement: the primary key's prefix, then its fingerprints.
OPEN_INCIDENTS = select(_F.fingerprint, _F.incident_id).where(
    _F.tenant_id == bindparam("b_tenant"),
    _F.provider == bindparam("b_provider"),
    _F.fingerprint.in_(bindparam("b_fingerprints", expanding=True)),
)
COUNT_ALERTS = (
    update(incidents)
    .where(incidents.c.id == bindparam("b_incident"))
    .values(alert_count=incidents.c.alert_count + bindparam("b_n"), updated_at=bindparam("b_now"))
)

# insert-or-ignore is spelled per dialect: built once per dialect name.
_IGNORING: dict[tuple[str, str], Any] = {}


def _insert_ignoring(tx: Tx, name: str) -> Any:
    key = (tx.db.dialect.name, name)
    stmt = _IGNORING.get(key)
    if stmt is None:
        if name == "delivery":
            stmt = tx.db.dialect.insert_ignore(
                inbound_deliveries, ["tenant_id", "provider", "delivery_id"]
            ).returning(_D.received_at)
        else:
            stmt = tx.db.dialect.insert_ignore(
                open_fingerprints, ["tenant_id", "provider", "fingerprint"]
            ).returning(_F.tenant_id, _F.provider, _F.fingerprint)
        _IGNORING[key] = stmt
    return stmt


async def claim_delivery(
    tx: Tx,
    tenant_id: str,
    provider: str,
    delivery_id: str,
    now_ms: int,
    fresh: Callable[[int], bool],
) -> str | None:
    """Record a delivery id; the first answer instead when `fresh(received_at)` says it counts.

    Inserting first makes a concurrent copy wait on the key (PostgreSQL) or the writer lock
    (SQLite) and then find the committed answer.
    """
    key = {"b_tenant": tenant_id, "b_provider": provider, "b_delivery": delivery_id}
    claimed = (
        await tx.execute(
            _insert_ignoring(tx, "delivery"),
            {
                "tenant_id": tenant_id,
                "provider": provider,
                "delivery_id": delivery_id,
                "response": "",
                "received_at": now_ms,
            },
        )
    ).first()
    if claimed is not None:
        return None
    seen = (await tx.execute(SEEN_DELIVERY, key)).first()
    if seen is not None and seen.response and fresh(seen.received_at):
        return str(seen.response)
    # Seen too long ago: this delivery takes the id over (unless a concurrent one just did).
    seen_at = seen.received_at if seen is not None else -1
    taken = await tx.execute(TAKE_OVER_DELIVERY, {**key, "b_seen_at": seen_at, "b_now": now_ms})
    if taken.rowcount == 1:
        return None
    again = (await tx.execute(SEEN_DELIVERY, key)).first()
    return str(again.response) if again is not None and again.response else None


async def set_delivery_response(
    tx: Tx, tenant_id: str, provider: str, delivery_id: str, body: str
) -> None:
    params = {"b_tenant": tenant_id, "b_provider": provider, "b_delivery": delivery_id}
    await tx.execute(SET_RESPONSE, {**params, "b_body": body})


Key = tuple[str, str, str]  # (tenant_id, provider, fingerprint)
_KEY_CHUNK = 500  # fingerprints per SELECT


async def open_incident_for(tx: Tx, tenant_id: str, provider: str, fingerprint: str) -> str | None:
    params = {"b_tenant": tenant_id, "b_provider": provider, "b_fingerprint": fingerprint}
    return (await tx.execute(OPEN_INCIDENT, params)).scalar()  # type: ignore[no-any-return]


async def open_incidents(tx: Tx, keys: list[Key]) -> dict[Key, str]:
    """The incident open for each key that has one: a statement per (tenant, provider)."""
    by_source: dict[tuple[str, str], list[str]] = {}
    for tenant_id, provider, fingerprint in keys:
        by_source.setdefault((tenant_id, provider), []).append(fingerprint)
    found: dict[Key, str] = {}
    for (tenant_id, provider), fingerprints in by_source.items():
        for start in range(0, len(fingerprints), _KEY_CHUNK):
            params = {
                "b_tenant": tenant_id,
                "b_provider": provider,
                "b_fingerprints": fingerprints[start : start + _KEY_CHUNK],
            }
            for fingerprint, incident_id in await tx.execute(OPEN_INCIDENTS, params):
                found[(tenant_id, provider, fingerprint)] = incident_id
    return found


async def claim_fingerprints(tx: Tx, claims: list[dict[str, str]]) -> set[Key]:
    """Make each claim's incident the open one of its key; returns the keys that took.

    A key missing from the answer already had an open incident (a concurrent writer that did
    not hold the tenant's log head, which every inbound transaction takes first).
    """
    if not claims:
        return set()
    rows = await tx.execute(_insert_ignoring(tx, "fingerprints"), claims)
    return {(r[0], r[1], r[2]) for r in rows}


async def count_alerts(tx: Tx, increments: list[dict[str, Any]]) -> None:
    """`{"b_incident", "b_n", "b_now"}` each: n more alerts, updated now."""
    if increments:
        await tx.execute(COUNT_ALERTS, increments)


def without_nul(alert: NormalizedAlert) -> NormalizedAlert:
    """The alert with NUL characters replaced in its plain-text fields (PostgreSQL text
    cannot hold them; JSON columns escape them already)."""
    fields = ("fingerprint", "title", "description", "service", "environment", "url")
    changes: dict[str, Any] = {
        name: value.replace("\x00", "\ufffd")
        for name in fields
        if isinstance(value := getattr(alert, name), str) and "\x00" in value
    }
    return replace(alert, **changes) if changes else alert


def alert_row(
    *,
    alert_id: str,
    tenant_id: str,
    provider: str,
    incident_id: str | None,
    alert: NormalizedAlert,
    now_ms: int,
) -> dict[str, Any]:
    """The stored row of one received alert. Pure."""
    return {
        "id": alert_id,
        "tenant_id": tenant_id,
        "incident_id": incident_id,
        "provider": provider,
        "fingerprint": alert.fingerprint,
        "status": alert.status,
        "title": alert.title,
        "description": alert.description,
        "severity": alert.severity,
        "service": alert.service,
        "environment": alert.environment,
        "labels": dumps_str(alert.labels),
        "url": alert.url,
        "raw": dumps_str(alert.raw),
        "received_at": now_ms,
    }


async def insert_alerts(tx: Tx, rows: list[dict[str, Any]]) -> None:
    await tx.insert_many(alerts, rows)

"""The SQL of incidents, their alerts and the open incident of each alert key.

The only module that reads or writes these tables: the incident service, the inbound path
(`ingest`, which parses and decides), triggers (changes recorded on incidents), publishing and
remediations (checks that an incident is the tenant's) call it. Everything runs on the
caller's connection or transaction; nothing commits here.

The inbound batch is the hottest write path of the service, so its statements are built once
with bind parameters and executed with a parameter dict (building a Core statement per call
costs several times more than running it), and its rows go through `Tx.insert_many`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update

from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx
from causeflow.db.lookup import tenant_row
from causeflow.db.prebuilt import per_length, prebuilt
from causeflow.incident.tables import alerts, incidents, open_fingerprints

Key = tuple[str, str, str]  # (tenant_id, provider, fingerprint)
_KEY_CHUNK = 500  # fingerprints per SELECT

_I = incidents.c
_F = open_fingerprints.c
_KEY_COLUMNS = ["tenant_id", "provider", "fingerprint"]

OPEN_INCIDENT = select(_F.incident_id).where(
    _F.tenant_id == bindparam("b_tenant"),
    _F.provider == bindparam("b_provider"),
    _F.fingerprint == bindparam("b_fingerprint"),
)
COUNT_ALERTS = (
    update(incidents)
    .where(_I.id == bindparam("b_incident"))
    .values(alert_count=_I.alert_count + bindparam("b_n"), updated_at=bindparam("b_now"))
)
# insert-or-ignore is spelled per dialect
CLAIM_FINGERPRINTS = prebuilt(
    lambda dialect: dialect.insert_ignore(open_fingerprints, _KEY_COLUMNS).returning(
        _F.tenant_id, _F.provider, _F.fingerprint
    )
)
RECLAIM_FINGERPRINT = prebuilt(
    lambda dialect: dialect.insert_ignore(open_fingerprints, _KEY_COLUMNS).returning(_F.incident_id)
)
# Every investigation.progress event looks its incident up.
_ROW = select(incidents).where(_I.id == bindparam("b_id"), _I.tenant_id == bindparam("b_tenant"))
_ROW_LOCKED = _ROW.with_for_update()  # rendered as nothing on SQLite (one writer)


# --- incidents -----------------------------------------------------------------------------


async def incident_row(
    conn: Conn, tenant_id: str, incident_id: str, *, lock: bool = False
) -> AnyRow | None:
    """The tenant's incident; `lock` holds its row until commit (PostgreSQL)."""
    params = {"b_id": incident_id, "b_tenant": tenant_id}
    return (await conn.execute(_ROW_LOCKED if lock else _ROW, params)).first()


async def require_incident(conn: Conn, tenant_id: str, incident_id: str) -> AnyRow:
    """The tenant's incident, else NotFound `incident_not_found` (an id not shaped like an
    incident id is not looked up)."""
    return await tenant_row(conn, incidents, tenant_id, incident_id, prefix="inc", what="incident")


async def incidents_of_service(
    conn: Conn, tenant_id: str, service: str, *, excluding: frozenset[str], limit: int
) -> list[str]:
    """Ids of the tenant's incidents of `service` (any case) whose status is not in
    `excluding`, oldest first."""
    stmt = (
        select(_I.id)
        .where(
            _I.tenant_id == tenant_id,
            _I.status.not_in(sorted(excluding)),
            func.lower(_I.service) == service.lower(),
        )
        .order_by(_I.created_at, _I.id)
        .limit(limit)
    )
    return [row.id for row in await conn.execute(stmt)]


async def insert_incidents(tx: Tx, rows: list[dict[str, Any]]) -> None:
    await tx.insert_many(incidents, rows)


async def incident_page(
    conn: Conn,
    tenant_id: str,
    *,
    statuses: frozenset[str] | None,
    severities: frozenset[str] | None,
    newest_first: bool,
    after: tuple[int, str] | None,
    limit: int,
) -> list[AnyRow]:
    """One keyset page ordered by (created_at, id), newest or oldest first."""
    cond: list[Any] = [_I.tenant_id == tenant_id]
    if statuses:
        cond.append(_I.status.in_(sorted(statuses)))
    if severities:
        cond.append(_I.severity.in_(sorted(severities)))
    created, ident = _I.created_at, _I.id
    if after is not None:
        at, after_id = after
        if newest_first:
            cond.append(or_(created < at, and_(created == at, ident < after_id)))
        else:
            cond.append(or_(created > at, and_(created == at, ident > after_id)))
    order = (created.desc(), ident.desc()) if newest_first else (created.asc(), ident.asc())
    stmt = select(incidents).where(and_(*cond)).order_by(*order).limit(limit)
    return list((await conn.execute(stmt)).all())


async def set_incident(tx: Tx, incident_id: str, values: dict[str, Any]) -> None:
    await tx.execute(update(incidents).where(_I.id == incident_id).values(**values))


async def touch_incidents(tx: Tx, incident_ids: list[str], now_ms: int) -> None:
    """The incidents were updated at `now_ms`."""
    await tx.execute(update(incidents).where(_I.id.in_(incident_ids)).values(updated_at=now_ms))


async def count_alerts(tx: Tx, increments: list[dict[str, Any]]) -> None:
    """`{"b_incident", "b_n", "b_now"}` each: n more alerts, updated now."""
    if increments:
        await tx.execute(COUNT_ALERTS, increments)


# --- alerts --------------------------------------------------------------------------------


async def insert_alerts(tx: Tx, rows: list[dict[str, Any]]) -> None:
    await tx.insert_many(alerts, rows)


async def latest_alerts(conn: Conn, tenant_id: str, incident_id: str, limit: int) -> list[AnyRow]:
    """The incident's latest alerts, newest first."""
    stmt = (
        select(alerts)
        .where(alerts.c.incident_id == incident_id, alerts.c.tenant_id == tenant_id)
        .order_by(alerts.c.received_at.desc(), alerts.c.id.desc())
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


# --- open fingerprints ---------------------------------------------------------------------
# Every writer of `open_fingerprints` holds the tenant's log head (PostgreSQL).


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
            chunk = fingerprints[start : start + _KEY_CHUNK]
            sql = _OPEN_INCIDENTS(tx.dialect, len(chunk))
            rows = await tx.exec_driver_sql(sql, (tenant_id, provider, *chunk))
            for fingerprint, incident_id in rows:
                found[(tenant_id, provider, fingerprint)] = incident_id
    return found


# The open incidents of `count` fingerprints of one (tenant, provider) (the primary key's
# prefix, then its fingerprints), in the driver's own SQL per count: run for each inbound batch
_OPEN_INCIDENTS = per_length(
    lambda count: select(_F.fingerprint, _F.incident_id).where(
        _F.tenant_id == bindparam("b_tenant"),
        _F.provider == bindparam("b_provider"),
        _F.fingerprint.in_([bindparam(f"b_{i}") for i in range(count)]),
    )
)


async def claim_fingerprints(tx: Tx, claims: list[dict[str, str]]) -> set[Key]:
    """Make each claim's incident the open one of its key; returns the keys that took.

    A key missing from the answer already had an open incident (a concurrent writer that did
    not hold the tenant's log head, which every inbound transaction takes first).
    """
    if not claims:
        return set()
    rows = await tx.returning_each(CLAIM_FINGERPRINTS(tx.db.dialect), claims)
    return {(r[0], r[1], r[2]) for r in rows}


async def reclaim_fingerprint(tx: Tx, claim: dict[str, str]) -> bool:
    """One key's claim; False when another incident holds the key (it keeps it)."""
    return bool((await tx.execute(RECLAIM_FINGERPRINT(tx.db.dialect), [claim])).all())


async def release_fingerprints(tx: Tx, incident_id: str) -> None:
    """The incident is no longer the open one of any key."""
    await tx.execute(delete(open_fingerprints).where(_F.incident_id == incident_id))

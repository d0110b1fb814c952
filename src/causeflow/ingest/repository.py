"""The SQL of inbound deliveries (their ids, first answers and purge) and the stored shape of an
alert.

Incidents, alerts and open fingerprints belong to the incident feature: they are written and
read through `incident.repository`. Statements are built once with bind parameters and
executed with a parameter dict: building a Core statement per call costs several times more
than running it, and this is the hottest write path of the service. Everything runs in the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from causeflow.db.engine import Tx
from causeflow.db.prebuilt import prebuilt
from causeflow.db.purge import delete_older
from causeflow.ingest.providers.base import NormalizedAlert
from causeflow.ingest.tables import inbound_deliveries
from causeflow.jsonutil import dumps_str

_D = inbound_deliveries.c
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
# insert-or-ignore is spelled per dialect
CLAIM_DELIVERY = prebuilt(
    lambda dialect: dialect.insert_ignore(
        inbound_deliveries, ["tenant_id", "provider", "delivery_id"]
    ).returning(_D.received_at)
)


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
            CLAIM_DELIVERY(tx.db.dialect),
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


async def forget_deliveries(tx: Tx, cutoff_ms: int, batch: int) -> tuple[int, bool]:
    """Forget up to about `batch` of the delivery ids received before `cutoff_ms`, oldest
    first; (rows deleted, whether older ones may remain)."""
    # The received_at of the batch-th oldest expired row bounds one small delete.
    bound = (
        await tx.execute(
            select(_D.received_at)
            .where(_D.received_at < cutoff_ms)
            .order_by(_D.received_at)
            .offset(batch - 1)
            .limit(1)
        )
    ).scalar()
    upto = _D.received_at < cutoff_ms if bound is None else _D.received_at <= bound
    result = await tx.execute(delete(inbound_deliveries).where(upto))
    return int(result.rowcount or 0), bound is not None


async def purge_delivery_ids(tx: Tx, cutoff_ms: int, limit: int) -> int:
    """The retention job's batch: up to `limit` delivery ids received before `cutoff_ms`."""
    return await delete_older(
        tx,
        inbound_deliveries,
        key="delivery_id",
        time_col="received_at",
        cutoff=cutoff_ms,
        limit=limit,
    )


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

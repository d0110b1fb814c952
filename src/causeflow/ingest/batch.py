"""Inbound deliveries applied in batches: one transaction and a handful of statements for all
the alerts that arrived together.

Concurrent deliveries queue in this process's inbound `Batcher` (db/batcher.py); one task at a
time takes what has queued and applies it with `apply_batch` in one transaction, so a burst
costs one SELECT of the open fingerprints, one insert of each kind of row and one position
reservation per tenant, instead of half a dozen statements per alert. The outcome is
the same as applying the deliveries one after another in arrival order, alert by alert in
payload order: an alert that repeats an earlier one of the same batch attaches to the incident
that one opened, a resolve sees everything before it.

A batch that fails is retried delivery by delivery, each in its own transaction, so one
delivery the database refuses (a value it cannot store) fails alone. Every caller returns only
after its transaction committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from causeflow import ids
from causeflow.db.batcher import Batcher
from causeflow.db.engine import Tx
from causeflow.event.log import NewEvent, append_events, lock_log_heads
from causeflow.incident import repository as incident_store
from causeflow.incident.repository import Key
from causeflow.incident.service import auto_move, created_event, new_incident_row
from causeflow.ingest import repository
from causeflow.ingest.dedup import Action, accepted_body, decide, delivery_is_fresh
from causeflow.ingest.providers.base import NormalizedAlert, ParsedPayload
from causeflow.jsonutil import dumps
from causeflow.tracing import spans


@dataclass
class Delivery:
    """One inbound delivery, authenticated and parsed, waiting to be stored."""

    tenant_id: str
    provider: str
    parsed: ParsedPayload
    now_ms: int
    # the request's span (tracing on), taken where the delivery is made: the batch applies it
    # in a task of its own
    traceparent: str | None = field(default_factory=spans.current_traceparent)


@dataclass
class Stored:
    """What storing a delivery gave: the 202 body and the outcome of each alert (for metrics)."""

    body: bytes
    outcomes: list[str]


class FingerprintTaken(Exception):
    """A key this batch meant to open was opened by a concurrent transaction: apply again."""


@dataclass
class _Writes:
    """Rows waiting to be written, flushed before a resolve and at the end of the batch."""

    claims: list[dict[str, str]] = field(default_factory=list)
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> row (in order)
    events: dict[str, list[NewEvent]] = field(default_factory=dict)  # tenant -> events
    alerts: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)  # incident id -> increment
    trace: str | None = None  # the span of the delivery being applied (tracing on)

    def open(self, key: Key, row: dict[str, Any]) -> None:
        tenant_id, provider, fingerprint = key
        self.claims.append(
            {
                "tenant_id": tenant_id,
                "provider": provider,
                "fingerprint": fingerprint,
                "incident_id": row["id"],
            }
        )
        self.incidents[row["id"]] = row
        event = created_event(row)
        if self.trace:
            event = replace(event, traceparent=self.trace)
        self.events.setdefault(tenant_id, []).append(event)

    def count(self, incident_id: str, now_ms: int) -> None:
        row = self.incidents.get(incident_id)
        if row is not None:  # opened in this batch and not written yet
            row["alert_count"] += 1
            row["updated_at"] = max(row["updated_at"], now_ms)
            return
        seen = self.counts.get(incident_id)
        if seen is None:
            self.counts[incident_id] = {"b_incident": incident_id, "b_n": 1, "b_now": now_ms}
        else:
            seen["b_n"] += 1
            seen["b_now"] = max(seen["b_now"], now_ms)

    async def flush(self, tx: Tx) -> None:
        if self.claims:
            taken = await incident_store.claim_fingerprints(tx, self.claims)
            if len(taken) != len(self.claims):
                raise FingerprintTaken()
            await incident_store.insert_incidents(tx, list(self.incidents.values()))
        for tenant_id, events in self.events.items():
            await append_events(tx, tenant_id=tenant_id, items=events, now_ms=events[0].now_ms or 0)
        await incident_store.insert_alerts(tx, self.alerts)
        await incident_store.count_alerts(tx, list(self.counts.values()))
        self.claims.clear()
        self.incidents.clear()
        self.events.clear()
        self.alerts.clear()
        self.counts.clear()


async def apply_batch(tx: Tx, batch: list[Delivery], ttl_seconds: int) -> list[Stored]:
    """Store a batch of deliveries in the caller's transaction, as if one after another."""
    stored: list[Stored | None] = [None] * len(batch)
    live, copies = await _claim_deliveries(tx, batch, ttl_seconds, stored)
    alerts_of = {i: list(map(repository.without_nul, batch[i].parsed.alerts)) for i in live}
    # every tenant's log head before any other row lock (PostgreSQL)
    await lock_log_heads(tx, (batch[i].tenant_id for i in live if alerts_of[i]))
    keys = list(
        {(batch[i].tenant_id, batch[i].provider, a.fingerprint) for i in live for a in alerts_of[i]}
    )
    open_now = await incident_store.open_incidents(tx, keys)
    writes = _Writes()
    for index in live:
        item = batch[index]
        results: list[tuple[str, str | None, Action]] = []
        with spans.span("ingest.apply", item.traceparent, _attributes(item)) as span:
            writes.trace = span.traceparent
            for alert in alerts_of[index]:
                results.append(await _apply_alert(tx, item, alert, open_now, writes))
            _describe(span, results)
        stored[index] = Stored(
            dumps(accepted_body(item.provider, results)), [action for _, _, action in results]
        )
    writes.trace = None
    await writes.flush(tx)

    for index in live:
        item = batch[index]
        if item.parsed.delivery_id:
            done = stored[index]
            assert done is not None
            await repository.set_delivery_response(
                tx, item.tenant_id, item.provider, item.parsed.delivery_id, done.body.decode()
            )
    for index, first in copies.items():
        done = stored[first]
        assert done is not None
        stored[index] = Stored(done.body, ["duplicate_delivery"])
    return [s for s in stored if s is not None]


def _attributes(item: Delivery) -> dict[str, Any]:
    if not spans.enabled():
        return {}
    return {"causeflow.tenant.id": item.tenant_id, "causeflow.inbound.provider": item.provider}


def _describe(span: spans.Handle, results: list[tuple[str, str | None, Action]]) -> None:
    """What a delivery did to incidents, on its span: the incidents and the actions."""
    if span.span is None:
        return
    span.set("causeflow.incident.ids", [i for _, i, _ in results if i])
    span.set("causeflow.alert.actions", [action for _, _, action in results])


async def _claim_deliveries(
    tx: Tx, batch: list[Delivery], ttl_seconds: int, stored: list[Stored | None]
) -> tuple[list[int], dict[int, int]]:
    """Claim each delivery id: a replay gets its stored answer (in `stored`), a repeat within
    the batch the answer of its first copy. Returns the indexes to apply, and copy -> first."""
    first_of: dict[tuple[str, str, str], int] = {}  # delivery id -> its first index here
    copies: dict[int, int] = {}
    live: list[int] = []
    for index, item in enumerate(batch):
        delivery_id = item.parsed.delivery_id
        if delivery_id:
            ident = (item.tenant_id, item.provider, delivery_id)
            if ident in first_of:  # the same delivery twice in one batch: one answer
                copies[index] = first_of[ident]
                continue
            first_of[ident] = index
            now_ms = item.now_ms
            replay = await repository.claim_delivery(
                tx,
                item.tenant_id,
                item.provider,
                delivery_id,
                now_ms,
                lambda received_at, now_ms=now_ms: delivery_is_fresh(  # type: ignore[misc]
                    received_at, now_ms, ttl_seconds
                ),
            )
            if replay is not None:
                stored[index] = Stored(replay.encode(), ["duplicate_delivery"])
                continue
        live.append(index)
    return live, copies


async def _apply_alert(
    tx: Tx, item: Delivery, alert: NormalizedAlert, open_now: dict[Key, str], writes: _Writes
) -> tuple[str, str | None, Action]:
    """One alert of a delivery: opens, attaches to or resolves its key's open incident
    (`open_now`, kept current); returns (fingerprint, incident id, what it did)."""
    tenant_id, provider, now_ms = item.tenant_id, item.provider, item.now_ms
    key = (tenant_id, provider, alert.fingerprint)
    incident_id = open_now.get(key)
    decision = decide(alert.status, incident_id is not None)
    action: Action = "ignored"
    if decision == "create":
        row = new_incident_row(
            tenant_id,
            title=alert.title,
            severity=alert.severity,
            source=provider,
            now_ms=now_ms,
            description=alert.description,
            service=alert.service,
            environment=alert.environment,
            fingerprint=alert.fingerprint,
            alert_count=1,
        )
        writes.open(key, row)
        incident_id = open_now[key] = row["id"]
        action = "created"
    elif decision in ("attach", "resolve") and incident_id is not None:
        writes.count(incident_id, now_ms)
        action = "attached"
        if decision == "resolve":
            action = await _resolve(tx, key, incident_id, now_ms, open_now, writes)
    writes.alerts.append(
        repository.alert_row(
            alert_id=ids.new_id("alr", now_ms),
            tenant_id=tenant_id,
            provider=provider,
            incident_id=incident_id,
            alert=alert,
            now_ms=now_ms,
        )
    )
    return alert.fingerprint, incident_id, action


async def _resolve(
    tx: Tx, key: Key, incident_id: str, now_ms: int, open_now: dict[Key, str], writes: _Writes
) -> Action:
    """The source says the incident is resolved: move it (after writing every row before it),
    then note which incident, if any, is open for the key now."""
    tenant_id, provider, fingerprint = key
    await writes.flush(tx)  # the move sees every row before it
    moved = await auto_move(tx, tenant_id, incident_id, "source_resolved", now_ms)
    reopened = await incident_store.open_incident_for(tx, tenant_id, provider, fingerprint)
    if reopened is None:
        open_now.pop(key, None)
    else:
        open_now[key] = reopened
    return "resolved" if moved is not None else "attached"


def inbound_batcher(transaction: Any, ttl_seconds: int) -> Batcher[Delivery, Stored]:
    """This process's queue of deliveries waiting for their transaction."""

    async def apply(tx: Tx, batch: list[Delivery]) -> list[Stored]:
        return await apply_batch(tx, batch, ttl_seconds)

    return Batcher("inbound", transaction, apply, retry_on=(FingerprintTaken,))

"""Subscription and delivery rules: create/patch/delete, secret rotation, test, retry, recover,
replay. Functions take the caller's transaction (or read connection) and never commit.

Secrets and extra headers are sealed with the service's `SecretBox` before they are stored.
A subscription's `from_position` is the tenant's log head read under the head row's lock
(`next_positions(tx, tenant, 0)`), so it receives exactly the events committed after it. A
change of its matching rules (events, filter, enabled) takes a new `from_position` the same
way and keeps the rules it replaces (`subscriptions.end_rules`), so an event is matched by the
rules in force when it was committed, however late it is dispatched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from causeflow import ids
from causeflow.auth.crypto import SecretBox
from causeflow.clock import ms_to_rfc3339
from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx
from causeflow.errors import Conflict, NotFound, ValidationFailed
from causeflow.event.log import (
    build_envelope,
    next_positions,
    page_in_window,
    tenant_envelopes,
)
from causeflow.jsonutil import dumps_str, loads
from causeflow.webhook import filters, rules, stats
from causeflow.webhook import repository as repo
from causeflow.webhook.destinations import checks
from causeflow.webhook.destinations.registry import WEBHOOK
from causeflow.webhook.egressrules import egress_values, egress_view
from causeflow.webhook.schemas import REDACTED, SubscriptionCreate
from causeflow.webhook.signing import generate_secret
from causeflow.webhook.ssrf import IPNetwork
from causeflow.webhook.subscriptions import Subscription, end_rules, from_row
from causeflow_sdk.models import sample_data

MANUAL_DISABLE = "disabled_by_user"
ENDPOINT_DISABLED = "endpoint_disabled"
MAX_REPLAY = 50_000
_REPLAY_CHUNK = 500
_MAX_ATTEMPTS_SHOWN = 200


@dataclass(frozen=True)
class Destination:
    """The SSRF policy for subscription URLs, from settings."""

    allow_http: bool
    allow: Sequence[IPNetwork]


def _opt_time(ms: int | None) -> str | None:
    return ms_to_rfc3339(ms) if ms is not None else None


def subscription_view(row: AnyRow, box: SecretBox) -> dict[str, Any]:
    headers = loads(box.open(row.headers_enc)) if row.headers_enc else {}
    return {
        "id": row.id,
        "url": row.url,
        "type": row.type,
        "options": loads(row.options) if row.options else None,
        "description": row.description,
        "events": loads(row.events),
        "filter": loads(row.filter) if row.filter else None,
        "headers": {name: REDACTED for name in headers},
        "enabled": bool(row.enabled),
        "disabledReason": row.disabled_reason,
        "firstFailureAt": _opt_time(row.first_failure_at),
        "rateLimitPerSecond": row.rate_limit_per_second,
        "ordering": row.ordering,
        "orderingKey": row.ordering_key,
        "createdAt": ms_to_rfc3339(row.created_at),
        "updatedAt": ms_to_rfc3339(row.updated_at),
        **egress_view(row, box),
    }


def delivery_view(row: AnyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "subscriptionId": row.subscription_id,
        "eventId": row.event_id,
        "eventType": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "nextAttemptAt": _opt_time(row.next_attempt_at),
        "lastStatusCode": row.last_status_code,
        "lastError": row.last_error,
        "test": row.payload is not None,
        "sequence": row.sequence,
        "createdAt": ms_to_rfc3339(row.created_at),
        "updatedAt": ms_to_rfc3339(row.updated_at),
    }


def attempt_view(row: AnyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "createdAt": ms_to_rfc3339(row.created_at),
        "statusCode": row.status_code,
        "latencyMs": row.latency_ms,
        "error": row.error,
        "responseBody": row.response_body,
    }


def delivery_row(
    *,
    tenant_id: str,
    subscription_id: str,
    event_id: str,
    event_type: str,
    enabled: bool,
    now_ms: int,
    payload: str | None = None,
) -> dict[str, Any]:
    """A new delivery: due now, or `failed`/`endpoint_disabled` for a disabled subscription."""
    return {
        "id": ids.new_id("msg", now_ms),
        "tenant_id": tenant_id,
        "subscription_id": subscription_id,
        "event_id": event_id,
        "event_type": event_type,
        "status": "pending" if enabled else "failed",
        "attempts": 0,
        "next_attempt_at": now_ms if enabled else None,
        "lease_owner": None,
        "lease_until": None,
        "manual": False,
        "last_status_code": None,
        "last_error": None if enabled else ENDPOINT_DISABLED,
        "payload": payload,
        "created_at": now_ms,
        "updated_at": now_ms,
        # in the table's column order (`Tx.insert_many` binds them positionally)
        "sequence": None,
        "ordered": False,
        "ordering_key": None,
    }


async def _require(
    conn: Conn, tenant_id: str, subscription_id: str, *, for_update: bool = False
) -> AnyRow:
    row = await repo.get_subscription(conn, tenant_id, subscription_id, for_update=for_update)
    if row is None:
        raise NotFound("no such webhook subscription", code="subscription_not_found")
    return row


def _require_enabled(row: AnyRow) -> None:
    if not row.enabled:
        raise Conflict(
            "the subscription is disabled; enable it first", code="subscription_disabled"
        )


# --- subscriptions -------------------------------------------------------------------------


async def create_subscription(
    tx: Tx,
    tenant_id: str,
    body: SubscriptionCreate,
    *,
    box: SecretBox,
    destination: Destination,
    max_per_tenant: int,
    now_ms: int,
) -> tuple[dict[str, Any], str]:
    """Returns the view and the plaintext secret (the only time it leaves the service)."""
    target = destination_columns(body.type, body.url, body.options, destination, box)
    events = rules.check_events(body.events)
    filter_ = filters.check_filter(body.filter)
    headers = rules.check_headers(body.headers)
    secret = rules.check_new_secret(body.secret) if body.secret is not None else generate_secret()
    ordering_key = filters.check_key("orderingKey", body.orderingKey)
    _no_egress_for_brokers(body.type, {"tls": body.tls, "auth": body.auth})
    _no_body_header(body.type, headers)
    egress = _egress(body.model_dump(include={"tls", "auth"}), box, destination, now_ms)
    # Locks the tenant's log head until commit: appends wait for us, so every event after
    # this position commits after the subscription does; it also serializes the cap check.
    from_position = await next_positions(tx, tenant_id, 0)
    count = await repo.count_subscriptions(tx.conn, tenant_id)
    if count >= max_per_tenant:
        raise Conflict(
            f"this tenant already has {count} webhook subscriptions", code="limit_reached"
        )
    sub_id = ids.new_id("sub", now_ms)
    await repo.insert_subscription(
        tx,
        {
            "id": sub_id,
            "tenant_id": tenant_id,
            **target,
            "description": body.description,
            "events": dumps_str(events),
            "filter": dumps_str(filter_) if filter_ else None,
            "headers_enc": box.seal(dumps_str(headers)) if headers else None,
            "secret_enc": box.seal(secret),
            "previous_secret_enc": None,
            "previous_secret_until": None,
            "enabled": body.enabled,
            "disabled_reason": None if body.enabled else MANUAL_DISABLE,
            "first_failure_at": None,
            "rate_limit_per_second": body.rateLimitPerSecond,
            "created_at": now_ms,
            "updated_at": now_ms,
            "from_position": from_position,
            "ordering": body.ordering,
            "ordering_key": ordering_key,
            **egress,
        },
    )
    row = await _require(tx.conn, tenant_id, sub_id)
    return subscription_view(row, box), secret


async def get_subscription(
    conn: Conn, tenant_id: str, subscription_id: str, box: SecretBox
) -> dict[str, Any]:
    return subscription_view(await _require(conn, tenant_id, subscription_id), box)


async def list_subscriptions(
    conn: Conn, tenant_id: str, box: SecretBox, *, after_id: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = await repo.list_subscriptions(conn, tenant_id, after_id=after_id, limit=limit)
    return [subscription_view(r, box) for r in rows]


async def update_subscription(
    tx: Tx,
    tenant_id: str,
    subscription_id: str,
    changes: dict[str, Any],
    *,
    box: SecretBox,
    destination: Destination,
    now_ms: int,
) -> dict[str, Any]:
    """Apply the fields present in `changes` (a PATCH body with unset fields left out).

    The URL, headers, description and rate apply to every attempt made from now on, pending
    deliveries included. A change of the matching rules (events, filter, enabled) applies to
    the events committed after this change; earlier ones keep the rules they were committed
    under (the row is locked first, then the log head: the order the delivery engine's own
    changes of a subscription take them in).
    """
    row = await _require(tx.conn, tenant_id, subscription_id, for_update=True)
    values: dict[str, Any] = {}
    rules_changed = False
    for name in ("url", "type", "events", "enabled", "ordering"):
        if name in changes and changes[name] is None:
            raise ValidationFailed.at(name, "may not be null")
    if {"url", "type", "options"} & changes.keys():
        values.update(_changed_destination(row, changes, destination, box))
    if "events" in changes:
        events = dumps_str(rules.check_events(changes["events"]))
        rules_changed |= events != row.events
        values["events"] = events
    if "filter" in changes:
        filter_ = filters.check_filter(changes["filter"])
        encoded = dumps_str(filter_) if filter_ else None
        rules_changed |= encoded != row.filter
        values["filter"] = encoded
    if "headers" in changes:
        stored = loads(box.open(row.headers_enc)) if row.headers_enc else {}
        headers = rules.check_headers(changes["headers"], keep_from=stored)
        values["headers_enc"] = box.seal(dumps_str(headers)) if headers else None
    values.update(_plain_changes(changes))
    _no_egress_for_brokers(changes.get("type") or row.type, _egress_after(row, changes))
    if {"type", "headers"} & changes.keys():
        final = values.get("headers_enc", row.headers_enc)
        _no_body_header(changes.get("type") or row.type, loads(box.open(final)) if final else {})
    values.update(_egress(changes, box, destination, now_ms))
    if "enabled" in changes and bool(changes["enabled"]) != bool(row.enabled):
        values["enabled"] = bool(changes["enabled"])
        rules_changed = True
        # Re-enabling starts afresh: the failure streak that disabled it is forgotten.
        values["disabled_reason"] = None if changes["enabled"] else MANUAL_DISABLE
        values["first_failure_at"] = None
    if rules_changed:
        # Events from here on are matched by the new rules (same lock as at create); the
        # events up to here keep the rules they were committed under.
        boundary = await next_positions(tx, tenant_id, 0)
        values.update(await end_rules(tx, row, boundary))
    values["updated_at"] = now_ms
    await repo.update_subscription(tx, tenant_id, subscription_id, values)
    return subscription_view(await _require(tx.conn, tenant_id, subscription_id), box)


def _egress_after(row: AnyRow, changes: dict[str, Any]) -> dict[str, Any]:
    """Whether `tls` and `auth` are set once the PATCH applies (truthy when they are)."""
    return {
        "tls": changes["tls"] if "tls" in changes else row.client_tls_enc,
        "auth": changes["auth"] if "auth" in changes else row.delivery_auth_enc,
    }


def _no_egress_for_brokers(type_: str, egress: dict[str, Any]) -> None:
    """A client certificate and delivery auth are HTTP's: a broker's credentials are in its
    URL, so a broker subscription refuses them rather than ignore them."""
    if type_ == WEBHOOK:
        return
    for field in ("tls", "auth"):
        if egress.get(field) is not None:
            raise ValidationFailed.at(
                field,
                f"a {type_} destination takes no {field}: its credentials are in its URL"
                f" (send {field}: null to remove it)",
            )


def _no_body_header(type_: str, headers: dict[str, str]) -> None:
    """A Redis entry's `body` field is the envelope: a header of that name would be lost."""
    if type_ != "redis":
        return
    for name in headers:
        if name.lower() == "body":
            raise ValidationFailed.at(
                f"headers.{name}", "a redis entry's body field is the envelope: rename this header"
            )


def _egress(
    changes: dict[str, Any], box: SecretBox, destination: Destination, now_ms: int
) -> dict[str, Any]:
    """The sealed columns of the client certificate and the delivery auth (`tls`, `auth`)."""
    return egress_values(
        changes,
        box=box,
        allow_http=destination.allow_http,
        allow=destination.allow,
        now_ms=now_ms,
    )


def destination_columns(
    type_: str,
    url: str,
    options: dict[str, Any] | None,
    destination: Destination,
    box: SecretBox,
    *,
    stored: str | None = None,
) -> dict[str, Any]:
    """The destination's columns, checked: a webhook's URL by the SSRF and scheme rules, a
    broker's by its type's (credentials sealed apart, masked in `url`)."""
    if type_ == WEBHOOK:
        checks.check_options(WEBHOOK, options)
        url = rules.check_destination(
            url, allow_http=destination.allow_http, allow=destination.allow
        )
        return {"type": WEBHOOK, "url": url, "options": None, "destination_enc": None}
    checked = checks.check_broker(type_, url, options, allow=destination.allow, stored=stored)
    return {
        "type": type_,
        "url": checked.shown_url,
        "options": dumps_str(checked.options),
        "destination_enc": box.seal(checked.sealed_url) if checked.sealed_url else None,
    }


def _changed_destination(
    row: AnyRow, changes: dict[str, Any], destination: Destination, box: SecretBox
) -> dict[str, Any]:
    """A PATCH of url, type or options: the fields not sent keep their stored values (the
    options only while the type stays); `****` in the URL keeps the stored credentials."""
    type_ = changes.get("type") or row.type
    url = changes.get("url") or row.url
    if "options" in changes:
        options = changes["options"]
    else:
        options = loads(row.options) if row.options and type_ == row.type else None
    stored = None
    if row.type != WEBHOOK:
        stored = box.open(row.destination_enc) if row.destination_enc else row.url
    return destination_columns(type_, url, options, destination, box, stored=stored)


def _plain_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """The columns of the PATCH fields that need neither the row nor a new rules version.
    Like the URL, the ordering applies to the deliveries the dispatcher creates from now on."""
    values: dict[str, Any] = {}
    if "description" in changes:
        values["description"] = changes["description"]
    if "rateLimitPerSecond" in changes:
        values["rate_limit_per_second"] = changes["rateLimitPerSecond"]
    if "ordering" in changes:
        values["ordering"] = changes["ordering"]
    if "orderingKey" in changes:
        values["ordering_key"] = filters.check_key("orderingKey", changes["orderingKey"])
    return values


async def delete_subscription(tx: Tx, tenant_id: str, subscription_id: str, now_ms: int) -> int:
    """Delete it and cancel its pending deliveries; returns how many were cancelled.

    No delivery of it is created after this commits: the dispatcher's cursor moves to a new
    generation first, so a batch that read the subscription before cannot commit after, and a
    batch that committed before has its deliveries cancelled here with the rest. An attempt a
    worker already started may still reach the endpoint; its outcome is not recorded as the
    delivery's status (the lease ends here), so it is never retried.
    """
    await repo.bump_generation(tx, tenant_id)
    cancelled = await repo.cancel_pending(tx, tenant_id, subscription_id, now_ms)
    if await repo.delete_subscription(tx, tenant_id, subscription_id) == 0:
        raise NotFound("no such webhook subscription", code="subscription_not_found")
    await repo.delete_sequence(tx, subscription_id)
    return cancelled


async def rotate_secret(
    tx: Tx,
    tenant_id: str,
    subscription_id: str,
    secret: str | None,
    *,
    box: SecretBox,
    overlap_seconds: int,
    now_ms: int,
) -> dict[str, Any]:
    """Install a new secret; the current one keeps signing alongside for the overlap."""
    new_secret = rules.check_new_secret(secret) if secret is not None else generate_secret()
    # Locked: two rotations at once must chain (each keeps the secret the other installed as
    # its previous one), not both replace the same current secret.
    row = await _require(tx.conn, tenant_id, subscription_id, for_update=True)
    until = now_ms + overlap_seconds * 1000 if overlap_seconds > 0 else None
    await repo.update_subscription(
        tx,
        tenant_id,
        subscription_id,
        {
            "secret_enc": box.seal(new_secret),
            "previous_secret_enc": row.secret_enc if until is not None else None,
            "previous_secret_until": until,
            "updated_at": now_ms,
        },
    )
    view = subscription_view(await _require(tx.conn, tenant_id, subscription_id), box)
    return {**view, "secret": new_secret, "previousSecretExpiresAt": _opt_time(until)}


# --- deliveries ----------------------------------------------------------------------------


async def send_test(
    tx: Tx, tenant_id: str, subscription_id: str, event_type: str, *, now_ms: int
) -> dict[str, Any]:
    """A sample event for this subscription only: its envelope (`"test": true`) is stored on
    the delivery row (`payload`), never appended to the log."""
    if event_type not in rules.KNOWN_TYPES:
        raise ValidationFailed.at("event", f"unknown event type {event_type!r}")
    row = await _require(tx.conn, tenant_id, subscription_id)
    _require_enabled(row)
    event_id = ids.new_id("evt", now_ms)
    envelope = build_envelope(
        event_id=event_id,
        event_type=event_type,
        tenant_id=tenant_id,
        data=sample_data(event_type),
        now_ms=now_ms,
        test=True,
    )
    values = delivery_row(
        tenant_id=tenant_id,
        subscription_id=subscription_id,
        event_id=event_id,
        event_type=event_type,
        enabled=True,
        now_ms=now_ms,
        payload=envelope,
    )
    await repo.insert_deliveries(tx, [values])
    return delivery_view(await _require_delivery(tx.conn, tenant_id, values["id"]))


async def list_deliveries(
    conn: Conn,
    tenant_id: str,
    query: repo.DeliveryQuery,
    *,
    before: tuple[int, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A page of the tenant's deliveries; of one subscription (404 if it is not the tenant's)
    when the query names one."""
    if query.subscription_id is not None:
        await _require(conn, tenant_id, query.subscription_id)
    rows = await repo.list_deliveries(conn, tenant_id, query, before=before, limit=limit)
    return [delivery_view(r) for r in rows]


async def messages(
    conn: Conn, tenant_id: str, subscription_id: str, *, after: int, limit: int
) -> list[dict[str, Any]]:
    """The events the subscription matched after sequence `after`, in sequence order, each
    with its delivery's state and its envelope (what a receiver that missed some fetches)."""
    await _require(conn, tenant_id, subscription_id)
    rows = await repo.messages_after(conn, tenant_id, subscription_id, after, limit)
    envelopes = await tenant_envelopes(conn, tenant_id, sorted({r.event_id for r in rows}))
    return [
        {
            "sequence": int(r.sequence),
            "deliveryId": r.id,
            "eventId": r.event_id,
            "eventType": r.event_type,
            "status": r.status,
            "attempts": r.attempts,
            "lastStatusCode": r.last_status_code,
            "lastError": r.last_error,
            "createdAt": ms_to_rfc3339(r.created_at),
            "event": loads(envelopes[r.event_id]) if r.event_id in envelopes else None,
        }
        for r in rows
    ]


async def _require_delivery(conn: Conn, tenant_id: str, delivery_id: str) -> AnyRow:
    row = await repo.get_delivery(conn, tenant_id, delivery_id)
    if row is None:
        raise NotFound("no such delivery", code="delivery_not_found")
    return row


async def get_delivery(conn: Conn, tenant_id: str, delivery_id: str) -> dict[str, Any]:
    row = await _require_delivery(conn, tenant_id, delivery_id)
    tried = await repo.list_attempts(conn, tenant_id, delivery_id, _MAX_ATTEMPTS_SHOWN)
    return {**delivery_view(row), "attemptLog": [attempt_view(a) for a in tried]}


async def retry_delivery(tx: Tx, tenant_id: str, delivery_id: str, now_ms: int) -> dict[str, Any]:
    """One more attempt now (same msg id, current url and secret); 409 while one is in flight."""
    row = await _require_delivery(tx.conn, tenant_id, delivery_id)
    sub = await repo.get_subscription(tx.conn, tenant_id, row.subscription_id)
    if sub is None:
        raise Conflict("its subscription was deleted", code="subscription_deleted")
    _require_enabled(sub)
    if await repo.schedule_retry(tx, tenant_id, delivery_id, now_ms) == 0:
        raise Conflict("an attempt of this delivery is in flight", code="delivery_in_flight")
    return delivery_view(await _require_delivery(tx.conn, tenant_id, delivery_id))


async def recover(
    tx: Tx, tenant_id: str, subscription_id: str, selection: rules.Selection, now_ms: int
) -> int:
    """Every `failed` delivery of the selection is due again (attempts kept)."""
    _require_enabled(await _require(tx.conn, tenant_id, subscription_id))
    return await repo.recover_failed(tx, tenant_id, subscription_id, selection, now_ms)


async def replay(
    tx: Tx,
    tenant_id: str,
    subscription_id: str,
    selection: rules.Selection,
    *,
    box: SecretBox,
    now_ms: int,
) -> int:
    """New deliveries (new msg ids, same event ids) for every event of the log in the
    selection that the subscription's current rules match, whatever its `from_position`."""
    row = await _require(tx.conn, tenant_id, subscription_id)
    _require_enabled(row)
    sub = from_row(row, box)
    after, total = 0, 0
    while True:
        chunk = await page_in_window(
            tx.conn,
            tenant_id,
            selection.since_ms,
            selection.until_ms,
            after,
            _REPLAY_CHUNK,
            types=selection.types,
            incident_id=selection.incident_id,
        )
        if not chunk:
            return total
        after = chunk[-1].position
        batch = [
            delivery_row(
                tenant_id=tenant_id,
                subscription_id=subscription_id,
                event_id=ev.id,
                event_type=ev.type,
                enabled=True,
                now_ms=now_ms,
            )
            for ev in chunk
            if wants(sub, ev.type, ev.envelope)
        ]
        total += len(batch)
        if total > MAX_REPLAY:
            raise ValidationFailed.at(
                "since", f"more than {MAX_REPLAY} events to replay; narrow the window"
            )
        await repo.insert_deliveries(tx, batch)


def wants(sub: Subscription, event_type: str, envelope: str) -> bool:
    """`matches` on a stored envelope, decoding it only when the type is subscribed."""
    if not sub.wants_type(event_type):
        return False
    return sub.matches(event_type, loads(envelope).get("data") or {})


async def subscription_stats(
    conn: Conn, tenant_id: str, subscription_id: str, *, now_ms: int, disable_after_ms: int
) -> dict[str, Any]:
    """The endpoint's health over the last hour and day, its backlog and failure state."""
    row = await _require(conn, tenant_id, subscription_id)
    day_start = now_ms - stats.DAY_MS
    day, hour = await repo.attempt_tallies(
        conn, tenant_id, subscription_id, day_start, now_ms - stats.HOUR_MS
    )
    failed = await repo.last_failed_attempt(conn, tenant_id, subscription_id)
    pending, oldest = await repo.backlog(conn, tenant_id, subscription_id)
    series_start = now_ms - stats.SERIES_BUCKETS * stats.HOUR_MS
    return stats.stats_view(
        subscription=row,
        now_ms=now_ms,
        hour=stats.Tally(hour),
        day=stats.Tally(day),
        last_error=(
            stats.LastError(failed.created_at, failed.status_code, failed.error)
            if failed is not None
            else None
        ),
        consecutive_failures=await repo.failures_since_success(conn, tenant_id, subscription_id),
        pending=pending,
        oldest_pending_ms=oldest,
        series=await repo.attempt_series(
            conn, tenant_id, subscription_id, series_start, stats.HOUR_MS
        ),
        disable_after_ms=disable_after_ms,
    )

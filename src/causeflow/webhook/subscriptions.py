"""Subscriptions as the delivery path sees them: decrypted, matched against events, cached.

`Subscription` is the in-memory form (secrets opened, headers decoded); `matches` is the pure
rule for which events it receives. Its matching rules (types, filter, enabled) are versioned by
log position: the row's columns are the rules for events after `from_position`, and `history`
keeps the earlier versions still needed by the dispatcher, each for the events after its own
start (`Rules.start`) up to the next version's start, so an event is matched by the rules in
force when it was committed (`version_at`). `SubscriptionCache` keeps subscriptions per
process so neither the dispatcher nor the workers read or decrypt a subscription per delivery:
entries live a few seconds and are dropped at once when this process changes them; other
processes see a change within the TTL, except the claimers, which compare each claimed
delivery's subscription with its stored row (`current`), so a change committed by any process
applies to every delivery claimed after it. `subscription_cache(ctx)` is the one instance of a
process.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select

from causeflow.auth.crypto import SecretBox
from causeflow.db.conn import AnyRow
from causeflow.db.engine import Database, Tx
from causeflow.jsonutil import dumps_str, loads
from causeflow.webhook.clienttls import ClientTls
from causeflow.webhook.deliveryauth import DeliveryAuth
from causeflow.webhook.filters import filter_matches
from causeflow.webhook.rules import expand_events
from causeflow.webhook.tables import subscriptions

if TYPE_CHECKING:
    from causeflow.context import AppContext

OPERATIONAL_PREFIX = "webhook."


@dataclass(frozen=True, slots=True)
class Rules:
    """One earlier version of a subscription's matching rules: for events after `start`."""

    start: int
    events: tuple[str, ...]
    filter: dict[str, Any] | None
    enabled: bool
    _event_set: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def wants_type(self, event_type: str) -> bool:
        return "*" in self._event_set or event_type in self._event_set

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "events": list(self.events),
            "filter": self.filter,
            "enabled": self.enabled,
        }


def rules_of(item: dict[str, Any]) -> Rules:
    events = tuple(item["events"])
    return Rules(
        start=int(item["start"]),
        events=events,
        filter=item.get("filter") or None,
        enabled=bool(item["enabled"]),
        _event_set=expand_events(events),
    )


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    tenant_id: str
    url: str
    description: str | None
    events: tuple[str, ...]
    filter: dict[str, Any] | None
    headers: dict[str, str] = field(repr=False)  # values may be secrets
    secret: str = field(repr=False)
    previous_secret: str | None = field(repr=False)
    previous_secret_until: int | None
    enabled: bool
    disabled_reason: str | None
    first_failure_at: int | None
    rate_limit_per_second: int | None
    created_at: int
    updated_at: int
    from_position: int
    ordered: bool = False  # its new deliveries are sent in sequence order per lane
    ordering_key: str | None = None  # the dotted key of the lanes (None: one lane)
    _event_set: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    # earlier versions of the matching rules, oldest first (see the module's docstring)
    history: tuple[Rules, ...] = ()
    # the client certificate presented to the receiver
    client_tls: ClientTls | None = field(default=None, repr=False)
    auth: DeliveryAuth | None = field(default=None, repr=False)  # how its deliveries authenticate
    type: str = "webhook"  # or a broker type (`destinations.registry.BROKER_TYPES`)
    options: dict[str, Any] | None = None  # the broker type's settings
    # the URL with its credentials, when it has some (`url` is the one shown)
    destination: str | None = field(default=None, repr=False)

    @property
    def target_url(self) -> str:
        """The URL to connect to, credentials included (`url` is the one shown)."""
        return self.destination or self.url

    @property
    def first_position(self) -> int:
        """It wants no event at or before this position (under any version of its rules)."""
        return self.history[0].start if self.history else self.from_position

    def version_at(self, position: int) -> Rules | None:
        """The earlier rules in force for an event at `position` <= `from_position`."""
        for rules in reversed(self.history):
            if position > rules.start:
                return rules
        return None

    def wants_type(self, event_type: str) -> bool:
        """Whether its current rules name this type (exactly, by a pattern, or by "*")."""
        return "*" in self._event_set or event_type in self._event_set

    def all_types(self) -> frozenset[str]:
        """Every type some version of its rules wants ("*" included as such)."""
        if not self.history:
            return self._event_set
        return self._event_set.union(*(r._event_set for r in self.history))

    def signing_secrets(self, now_ms: int) -> list[str]:
        """The current secret first, then the previous one while its overlap lasts."""
        out = [self.secret]
        if self.previous_secret and (self.previous_secret_until or 0) > now_ms:
            out.append(self.previous_secret)
        return out

    def matches(self, event_type: str, data: dict[str, Any]) -> bool:
        return matches(self, event_type, data)


def matches(sub: Subscription, event_type: str, data: dict[str, Any]) -> bool:
    """Does `sub` receive this event? Pure: type list (or "*"), then the `data` filter.

    Operational events about a subscription are never delivered to that subscription.
    """
    return rules_match(sub.id, sub._event_set, sub.filter, event_type, data)


def rules_match(
    sub_id: str,
    event_set: frozenset[str],
    filter_: dict[str, Any] | None,
    event_type: str,
    data: dict[str, Any],
) -> bool:
    """`matches` for any version of a subscription's rules."""
    if "*" not in event_set and event_type not in event_set:
        return False
    if event_type.startswith(OPERATIONAL_PREFIX) and data.get("subscriptionId") == sub_id:
        return False
    return filter_matches(filter_, data)


def from_row(row: AnyRow, box: SecretBox) -> Subscription:
    events = tuple(loads(row.events))
    return Subscription(
        id=row.id,
        tenant_id=row.tenant_id,
        url=row.url,
        description=row.description,
        events=events,
        filter=loads(row.filter) if row.filter else None,
        headers=loads(box.open(row.headers_enc)) if row.headers_enc else {},
        secret=box.open(row.secret_enc),
        previous_secret=box.open(row.previous_secret_enc) if row.previous_secret_enc else None,
        previous_secret_until=row.previous_secret_until,
        enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason,
        first_failure_at=row.first_failure_at,
        rate_limit_per_second=row.rate_limit_per_second,
        created_at=row.created_at,
        updated_at=row.updated_at,
        from_position=row.from_position,
        ordered=row.ordering == "ordered",
        ordering_key=row.ordering_key,
        _event_set=expand_events(events),
        history=history_of(row.rules_history),
        client_tls=ClientTls.from_json(loads(box.open(row.client_tls_enc)))
        if row.client_tls_enc
        else None,
        auth=DeliveryAuth.from_json(loads(box.open(row.delivery_auth_enc)))
        if row.delivery_auth_enc
        else None,
        type=row.type,
        options=loads(row.options) if row.options else None,
        destination=box.open(row.destination_enc) if row.destination_enc else None,
    )


def history_of(text: str | None) -> tuple[Rules, ...]:
    """The stored `rules_history` column (a JSON list, oldest first) decoded."""
    return tuple(rules_of(item) for item in loads(text)) if text else ()


async def end_rules(tx: Tx, row: Any, boundary: int) -> dict[str, Any]:
    """Column values that end the row's current matching rules at log position `boundary`.

    `boundary` is the tenant's log head read under its lock, so every event up to it committed
    under the current rules and every later one commits under the next. The current rules join
    the history unless no event can fall under them (`boundary` is still `from_position`), and
    versions that only cover events the dispatcher has passed are dropped: the history holds
    just what undispatched events need.
    """
    from causeflow.webhook.repository import cursor_position

    history = [r.to_json() for r in history_of(row.rules_history)]
    if boundary > row.from_position:
        history.append(
            {
                "start": row.from_position,
                "events": loads(row.events),
                "filter": loads(row.filter) if row.filter else None,
                "enabled": bool(row.enabled),
            }
        )
    dispatched = await cursor_position(tx, row.tenant_id)
    # a version covers the events up to the next one's start (the last: up to `boundary`)
    ends = [item["start"] for item in history[1:]] + [boundary]
    kept = [item for item, end in zip(history, ends, strict=False) if end > dispatched]
    return {"rules_history": dumps_str(kept) if kept else None, "from_position": boundary}


_OF_TENANT = select(subscriptions).where(subscriptions.c.tenant_id == bindparam("b_tenant"))
_BY_IDS = select(subscriptions).where(subscriptions.c.id.in_(bindparam("b_ids", expanding=True)))


class SubscriptionCache:
    def __init__(self, db: Database, box: SecretBox, ttl: float = 2.0) -> None:
        self.db = db
        self.box = box
        self.ttl = ttl
        self._by_id: dict[str, tuple[Subscription | None, float]] = {}
        # tenant -> id -> (the stored row, its decoded form): the dispatcher's view, compared
        # row by row on each read so that only a changed subscription is decrypted again
        self._decoded: dict[str, dict[str, tuple[tuple[Any, ...], Subscription]]] = {}
        # id -> (the stored row, its decoded form): the claimers' view, compared on each read
        self._rows: dict[str, tuple[tuple[Any, ...], Subscription]] = {}

    async def get(self, subscription_id: str) -> Subscription | None:
        hit = self._by_id.get(subscription_id)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self.ttl:
            return hit[0]
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(subscriptions).where(subscriptions.c.id == subscription_id)
                )
            ).first()
        sub = from_row(row, self.box) if row else None
        self._by_id[subscription_id] = (sub, now)
        return sub

    async def current(self, ids: Iterable[str]) -> dict[str, Subscription | None]:
        """The subscriptions as stored now (None: deleted), for deliveries just claimed.

        The rows are read each time (one query), so a change committed by any process applies
        to every delivery claimed after it; only a row that changed since the last read is
        decrypted again."""
        wanted = list(dict.fromkeys(ids))
        out: dict[str, Subscription | None] = dict.fromkeys(wanted)
        if not wanted:
            return out
        async with self.db.read() as conn:
            rows = (await conn.execute(_BY_IDS, {"b_ids": wanted})).all()
        for row in rows:
            key = tuple(row)
            hit = self._rows.get(row.id)
            if hit is None or hit[0] != key:
                hit = self._rows[row.id] = (key, from_row(row, self.box))
            out[row.id] = hit[1]
        for sid, sub in out.items():
            if sub is None:
                self._rows.pop(sid, None)
        return out

    async def dispatch_set(self, tx: Tx, tenant_id: str) -> tuple[int, list[Subscription]]:
        """The tenant's log head and its subscriptions, read inside the dispatcher's transaction.

        The head is read first, then the rows: on PostgreSQL a subscription missing from the
        rows committed after that read, so its `from_position` is at least that head and it
        wants no event up to it; a change of its rules committed after that read starts at that
        head or later, and the rules it replaced are in the history read with it (on SQLite the
        write transaction sees neither change). A delete committed after the cursor was read
        fails the batch's compare-and-set (the generation). The set is valid for positions <=
        head. Rows are read each time (a few microseconds on the writer); only a row that
        changed since the last read is decrypted again.
        """
        from causeflow.event.log import head_position

        head = await head_position(tx, tenant_id)
        rows = (await tx.execute(_OF_TENANT, {"b_tenant": tenant_id})).all()
        known = self._decoded.get(tenant_id, {})
        fresh: dict[str, tuple[tuple[Any, ...], Subscription]] = {}
        for row in rows:
            key = tuple(row)
            hit = known.get(row.id)
            if hit is None or hit[0] != key:
                hit = (key, from_row(row, self.box))
            fresh[row.id] = hit
        self._decoded[tenant_id] = fresh
        return head, [sub for _key, sub in fresh.values()]

    def known_without(self, tenant_id: str) -> bool:
        """The tenant had no subscription at all when the dispatcher last read its set (and no
        change made in this process came since: that drops what was read)."""
        found = self._decoded.get(tenant_id)
        return found is not None and not found

    def invalidate(self, subscription_id: str | None = None, tenant_id: str | None = None) -> None:
        if subscription_id is not None:
            self._by_id.pop(subscription_id, None)
            self._rows.pop(subscription_id, None)
        if tenant_id is not None:
            self._decoded.pop(tenant_id, None)


def subscription_cache(ctx: AppContext) -> SubscriptionCache:
    """The process's cache (`ctx.subscription_cache`), created on first use."""
    cache = ctx.subscription_cache
    if not isinstance(cache, SubscriptionCache):
        cache = SubscriptionCache(ctx.db, ctx.keys.box)
        ctx.subscription_cache = cache
    return cache

"""The API's resources as groups of async methods: subscriptions, deliveries, incidents, events.

Each method is one request (`list` one page); `iterate` walks every page. Arguments are
snake_case; request bodies and the returned models use the wire's camelCase. In `update`
methods an argument left out is not sent, while `None` clears the field.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from causeflow_sdk.errors import CauseFlowConnectionError
from causeflow_sdk.http import Params, Transport
from causeflow_sdk.models import Envelope
from causeflow_sdk.types import (
    BatchEvent,
    Delivery,
    DeliveryDetail,
    DeliveryStatus,
    Incident,
    IncidentDetail,
    Message,
    Page,
    RotatedSecret,
    Subscription,
    SubscriptionWithSecret,
)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Default of optional `update` arguments: "leave as is" (None would clear the field)."""


def rfc3339(value: str | datetime) -> str:
    """A time argument as the API wants it: RFC 3339 UTC with milliseconds (strings pass)."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("give an aware datetime (with a time zone)")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _joined(value: str | Sequence[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


def _body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not UNSET}


def _page(raw: Mapping[str, Any], parse: Callable[[Any], T]) -> Page[T]:
    items = [parse(item) for item in raw.get("items", [])]
    return Page(items=items, cursor=raw.get("cursor"), count=int(raw.get("count", len(items))))


async def _walk(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    """Every item, page after page. A cursor only moves forward: one the server sent before
    means a broken server, and is an error rather than an endless walk."""
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if page.cursor is None or not page.items:
            return
        if page.cursor in seen:
            raise CauseFlowConnectionError("the server sent a page cursor it had sent before")
        seen.add(page.cursor)
        cursor = page.cursor


def _batch_item(event: BatchEvent) -> dict[str, Any]:
    item: dict[str, Any] = {"event": event["event"], "data": dict(event["data"])}
    if event.get("test"):
        item["test"] = True
    return item


class _Group:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def _one(self, model: type[M], method: str, path: str, **kw: Any) -> M:
        return model.model_validate(await self._t.request(method, path, **kw))

    async def _list(self, model: type[M], path: str, params: Params) -> Page[M]:
        return _page(await self._t.request("GET", path, params=params), model.model_validate)


class Subscriptions(_Group):
    """`/v1/webhook-subscriptions`: where the service pushes events (admin scope to write)."""

    async def create(
        self,
        url: str,
        events: Sequence[str],
        *,
        secret: str | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        filter: Mapping[str, Any] | None = None,  # noqa: A002 - the API's name
        headers: Mapping[str, str] | None = None,
        rate_limit_per_second: int | None = None,
        ordering: str | None = None,
        ordering_key: str | None = None,
        tls: Mapping[str, str] | None = None,
        auth: Mapping[str, Any] | None = None,
        type: str | None = None,  # noqa: A002 - the API's name
        options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> SubscriptionWithSecret:
        """Create a subscription; the result carries the signing secret, shown only here.

        `tls` is `{"clientCertificate", "clientKey"}` (PEM) and `auth` `{"type": "bearer",
        "token"}` or `{"type": "oauth2", "tokenUrl", "clientId", "clientSecret", ...}`: both
        write-only (reads show what identifies them).
        `type` is "webhook" (the default: an HTTP POST to `url`) or a broker ("redis", "nats",
        "rabbitmq", "mqtt") with its `options`; a broker URL's credentials are write-only.
        """
        body: dict[str, Any] = {"url": url, "events": list(events)}
        optional = {
            "type": type,
            "options": dict(options) if options is not None else None,
            "secret": secret,
            "description": description,
            "enabled": enabled,
            "filter": dict(filter) if filter is not None else None,
            "headers": dict(headers) if headers is not None else None,
            "rateLimitPerSecond": rate_limit_per_second,
            "ordering": ordering,
            "orderingKey": ordering_key,
            "tls": dict(tls) if tls is not None else None,
            "auth": dict(auth) if auth is not None else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return await self._one(
            SubscriptionWithSecret,
            "POST",
            "/v1/webhook-subscriptions",
            json=body,
            idempotency_key=idempotency_key,
        )

    async def list(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Subscription]:
        return await self._list(
            Subscription, "/v1/webhook-subscriptions", {"limit": limit, "cursor": cursor}
        )

    def iterate(self, *, limit: int | None = None) -> AsyncIterator[Subscription]:
        """Every subscription, fetching pages of `limit` as the loop needs them."""
        return _walk(lambda cursor: self.list(limit=limit, cursor=cursor))

    async def get(self, subscription_id: str) -> Subscription:
        return await self._one(Subscription, "GET", f"/v1/webhook-subscriptions/{subscription_id}")

    async def update(
        self,
        subscription_id: str,
        *,
        url: str = UNSET,
        events: Sequence[str] = UNSET,
        description: str | None = UNSET,
        enabled: bool = UNSET,
        filter: Mapping[str, Any] | None = UNSET,  # noqa: A002 - the API's name
        headers: Mapping[str, str] | None = UNSET,
        rate_limit_per_second: int | None = UNSET,
        ordering: str = UNSET,
        ordering_key: str | None = UNSET,
        tls: Mapping[str, str] | None = UNSET,
        auth: Mapping[str, Any] | None = UNSET,
        type: str = UNSET,  # noqa: A002 - the API's name
        options: Mapping[str, Any] | None = UNSET,
    ) -> Subscription:
        """Change the fields given; `None` clears those that may be cleared (`tls`, `auth`...)."""
        body = _body(
            tls=dict(tls) if tls not in (UNSET, None) else tls,
            auth=dict(auth) if auth not in (UNSET, None) else auth,
            type=type,
            options=dict(options) if options not in (UNSET, None) else options,
            ordering=ordering,
            orderingKey=ordering_key,
            url=url,
            events=builtins.list(events) if events is not UNSET else UNSET,
            description=description,
            enabled=enabled,
            filter=dict(filter) if filter not in (UNSET, None) else filter,
            headers=dict(headers) if headers not in (UNSET, None) else headers,
            rateLimitPerSecond=rate_limit_per_second,
        )
        return await self._one(
            Subscription, "PATCH", f"/v1/webhook-subscriptions/{subscription_id}", json=body
        )

    async def delete(self, subscription_id: str) -> None:
        """Delete it; its pending deliveries are cancelled."""
        await self._t.request("DELETE", f"/v1/webhook-subscriptions/{subscription_id}")

    async def rotate_secret(self, subscription_id: str, secret: str | None = None) -> RotatedSecret:
        """A new secret (generated, or `secret`); the old one keeps signing alongside a while."""
        body = {"secret": secret} if secret is not None else {}
        return await self._one(
            RotatedSecret,
            "POST",
            f"/v1/webhook-subscriptions/{subscription_id}/rotate-secret",
            json=body,
        )

    async def test(self, subscription_id: str, event: str | None = None) -> Delivery:
        """Deliver a sample event of type `event` (default incident.created) to it only."""
        body = {"event": event} if event is not None else {}
        return await self._one(
            Delivery, "POST", f"/v1/webhook-subscriptions/{subscription_id}/test", json=body
        )

    async def deliveries(
        self,
        subscription_id: str,
        *,
        status: DeliveryStatus | None = None,
        event: str | Sequence[str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        """One page of its deliveries, newest first."""
        params = {"status": status, "event": _joined(event), "limit": limit, "cursor": cursor}
        return await self._list(
            Delivery, f"/v1/webhook-subscriptions/{subscription_id}/deliveries", params
        )

    async def messages_page(
        self,
        subscription_id: str,
        *,
        after_sequence: int = 0,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Message]:
        """One page of the events it matched after `after_sequence`, in sequence order."""
        params = {"afterSequence": after_sequence, "limit": limit, "cursor": cursor}
        return await self._list(
            Message, f"/v1/webhook-subscriptions/{subscription_id}/messages", params
        )

    def messages(
        self, subscription_id: str, *, after_sequence: int = 0, limit: int | None = None
    ) -> AsyncIterator[Message]:
        """Every event it matched after `after_sequence`, in sequence order, with the
        envelope as delivered: what a receiver missed (see `causeflow_sdk.gaps.GapTracker`)."""
        return _walk(
            lambda cursor: self.messages_page(
                subscription_id, after_sequence=after_sequence, limit=limit, cursor=cursor
            )
        )

    async def recover(
        self, subscription_id: str, since: str | datetime, until: str | datetime | None = None
    ) -> int:
        """Schedule again every failed delivery created in the window; return how many."""
        return await self._window("recover", subscription_id, since, until)

    async def replay(
        self, subscription_id: str, since: str | datetime, until: str | datetime | None = None
    ) -> int:
        """Deliver again every matching event of the window; return how many deliveries."""
        return await self._window("replay", subscription_id, since, until)

    async def _window(
        self, action: str, subscription_id: str, since: str | datetime, until: str | datetime | None
    ) -> int:
        body = {"since": rfc3339(since)}
        if until is not None:
            body["until"] = rfc3339(until)
        raw = await self._t.request(
            "POST", f"/v1/webhook-subscriptions/{subscription_id}/{action}", json=body
        )
        return int(raw["scheduled"])


class Deliveries(_Group):
    """`/v1/deliveries/{msgId}`: one delivery with its attempts, and a manual retry."""

    async def get(self, delivery_id: str) -> DeliveryDetail:
        return await self._one(DeliveryDetail, "GET", f"/v1/deliveries/{delivery_id}")

    async def retry(self, delivery_id: str) -> Delivery:
        """One more attempt now (409 while one is in flight)."""
        return await self._one(Delivery, "POST", f"/v1/deliveries/{delivery_id}/retry")


class Incidents(_Group):
    """`/v1/incidents`: manual incidents, their lifecycle, and reads."""

    async def create(
        self,
        title: str,
        severity: str,
        *,
        description: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        idempotency_key: str | None = None,
    ) -> Incident:
        body: dict[str, Any] = {"title": title, "severity": severity}
        optional = {"description": description, "service": service, "environment": environment}
        body.update({k: v for k, v in optional.items() if v is not None})
        return await self._one(
            Incident, "POST", "/v1/incidents", json=body, idempotency_key=idempotency_key
        )

    async def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        severity: str | Sequence[str] | None = None,
        sort: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Incident]:
        """One page of incidents (newest first unless `sort="createdAt"`)."""
        params = {
            "status": _joined(status),
            "severity": _joined(severity),
            "sort": sort,
            "limit": limit,
            "cursor": cursor,
        }
        return await self._list(Incident, "/v1/incidents", params)

    def iterate(
        self,
        *,
        status: str | Sequence[str] | None = None,
        severity: str | Sequence[str] | None = None,
        sort: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Incident]:
        return _walk(
            lambda cursor: self.list(
                status=status, severity=severity, sort=sort, limit=limit, cursor=cursor
            )
        )

    async def get(self, incident_id: str) -> IncidentDetail:
        """The incident with its alerts and its events in log order."""
        return await self._one(IncidentDetail, "GET", f"/v1/incidents/{incident_id}")

    async def update(self, incident_id: str, *, status: str) -> Incident:
        """Move it to `status` (409 `invalid_transition` when the lifecycle forbids it)."""
        return await self._one(
            Incident, "PATCH", f"/v1/incidents/{incident_id}", json={"status": status}
        )


class Events(_Group):
    """`/v1/events`: publish (machine producers, tests) and read the log in its order."""

    async def publish(
        self,
        event: str,
        data: Mapping[str, Any],
        *,
        test: bool = False,
        idempotency_key: str | None = None,
    ) -> Envelope:
        """Publish one event; return the stored envelope."""
        body: dict[str, Any] = {"event": event, "data": dict(data)}
        if test:
            body["test"] = True
        raw = await self._t.request(
            "POST", "/v1/events", json=body, idempotency_key=idempotency_key
        )
        return Envelope.model_validate(raw)

    async def publish_batch(
        self, events: Sequence[BatchEvent], *, idempotency_key: str | None = None
    ) -> builtins.list[Envelope]:
        """Publish 1 to 100 events in one transaction, in order, all or none (a refused event
        raises `CauseFlowAPIError` naming it, `events.<index>…`, and nothing is stored);
        return the stored envelopes in the order given."""
        body = {"events": [_batch_item(e) for e in events]}
        raw = await self._t.request(
            "POST", "/v1/events/batch", json=body, idempotency_key=idempotency_key
        )
        return [Envelope.model_validate(item["event"]) for item in raw["items"]]

    async def list(
        self,
        *,
        event: str | Sequence[str] | None = None,
        incident_id: str | None = None,
        since: str | datetime | None = None,
        after: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Envelope]:
        """One page of the log, oldest first; `after` is an event id (strictly after it)."""
        params = {
            "event": _joined(event),
            "incidentId": incident_id,
            "since": rfc3339(since) if since is not None else None,
            "after": after,
            "limit": limit,
            "cursor": cursor,
        }
        return await self._list(Envelope, "/v1/events", params)

    def iterate(
        self,
        *,
        event: str | Sequence[str] | None = None,
        incident_id: str | None = None,
        since: str | datetime | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Envelope]:
        """The whole log from the filters on, page after page, as the loop consumes it."""
        return _walk(
            lambda cursor: self.list(
                event=event,
                incident_id=incident_id,
                since=since,
                after=after,
                limit=limit,
                cursor=cursor,
            )
        )

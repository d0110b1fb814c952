"""Broker subscriptions attacked through the API: webhook-only fields on a broker destination
and options that aim at a broker's own control topics or subjects."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.inproc import Service, Tenant
from tests.support.webhook import SUBS, error_paths

pytestmark = pytest.mark.integration

REDIS = {
    "type": "redis",
    "url": "redis://app:pw@127.0.0.1:6379/0",
    "options": {"stream": "orders"},
    "events": ["*"],
}
BEARER = {"type": "bearer", "token": "tok-" + "x" * 30}


async def create(service: Service, tenant: Tenant, **body: Any) -> Any:
    return await service.client.post(SUBS, headers=tenant.admin_headers, json={**REDIS, **body})


async def test_a_broker_subscription_refuses_delivery_auth(service: Service, tenant: Tenant):
    """HTTP delivery auth means nothing to a broker: silently ignoring it would let a tenant
    believe its messages are authenticated."""
    resp = await create(service, tenant, auth=BEARER)
    assert error_paths(resp) == ["auth"]
    listed = await service.client.get(SUBS, headers=tenant.admin_headers)
    assert listed.json()["count"] == 0


async def test_a_webhook_with_auth_becomes_a_broker_only_once_the_auth_is_removed(
    service: Service, tenant: Tenant
):
    hook = await service.client.post(
        SUBS,
        headers=tenant.admin_headers,
        json={"url": "http://127.0.0.1:9/hook", "events": ["*"], "auth": BEARER},
    )
    assert hook.status_code == 201, hook.text
    path = f"{SUBS}/{hook.json()['id']}"
    switch = {k: REDIS[k] for k in ("type", "url", "options")}
    resp = await service.client.patch(path, headers=tenant.admin_headers, json=switch)
    assert error_paths(resp) == ["auth"]
    resp = await service.client.patch(
        path, headers=tenant.admin_headers, json={**switch, "auth": None}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["type"] == "redis" and resp.json()["auth"] is None
    again = await service.client.patch(path, headers=tenant.admin_headers, json={"auth": BEARER})
    assert error_paths(again) == ["auth"]


@pytest.mark.parametrize(
    ("type_", "url", "options", "path"),
    [
        ("mqtt", "mqtt://127.0.0.1", {"topic": "$SYS/broker/clients"}, "options.topic"),
        ("mqtt", "mqtt://127.0.0.1", {"topic": "$share/g/t"}, "options.topic"),
        (
            "nats",
            "nats://127.0.0.1",
            {"subject": "$JS.API.STREAM.DELETE.ORDERS"},
            "options.subject",
        ),
        ("nats", "nats://127.0.0.1", {"subject": "$SYS.REQ.SERVER.PING"}, "options.subject"),
    ],
)
async def test_broker_control_topics_are_refused_at_create(
    service: Service, tenant: Tenant, type_: str, url: str, options: dict[str, Any], path: str
):
    resp = await create(service, tenant, type=type_, url=url, options=options)
    assert error_paths(resp) == [path]


async def test_a_routing_key_over_255_bytes_is_refused_at_create(service: Service, tenant: Tenant):
    """AMQP short strings are 255 bytes: 200 two-byte characters would pass a length in
    characters and then fail every attempt."""
    resp = await create(
        service,
        tenant,
        type="rabbitmq",
        url="amqp://127.0.0.1",
        options={"exchange": "", "routingKey": "é" * 200},
    )
    assert error_paths(resp) == ["options.routingKey"]


async def test_a_redis_subscription_refuses_a_header_named_body(service: Service, tenant: Tenant):
    """A Redis entry's `body` field is the envelope: a header of that name would be dropped."""
    resp = await create(service, tenant, headers={"Body": "x"})
    assert error_paths(resp) == ["headers.Body"]
    hook = await service.client.post(
        SUBS,
        headers=tenant.admin_headers,
        json={"url": "http://127.0.0.1:9/hook", "events": ["*"], "headers": {"body": "x"}},
    )
    assert hook.status_code == 201, hook.text
    path = f"{SUBS}/{hook.json()['id']}"
    switch = {k: REDIS[k] for k in ("type", "url", "options")}
    resp = await service.client.patch(path, headers=tenant.admin_headers, json=switch)
    assert error_paths(resp) == ["headers.body"]

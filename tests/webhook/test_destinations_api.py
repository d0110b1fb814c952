"""Broker subscriptions through the API on both backends: types, options, write-only
credentials, the SSRF rules of broker hosts, and another tenant's subscriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from causeflow.webhook.subscriptions import subscription_cache
from causeflow.webhook.tables import subscriptions
from tests.support.inproc import Service, Tenant, make_settings, running_service
from tests.support.webhook import SUBS, error_paths

pytestmark = pytest.mark.integration

PASSWORD = "s3cr3t-Pa55word"
REDIS = {
    "type": "redis",
    "url": f"redis://app:{PASSWORD}@127.0.0.1:6379/0",
    "options": {"stream": "orders"},
    "events": ["*"],
}


async def create(service: Service, tenant: Tenant, **body: Any) -> Any:
    return await service.client.post(SUBS, headers=tenant.admin_headers, json={**REDIS, **body})


async def stored_row(service: Service, sub_id: str) -> Any:
    async with service.ctx.db.read() as conn:
        stmt = select(subscriptions).where(subscriptions.c.id == sub_id)
        return (await conn.execute(stmt)).one()


async def test_credentials_are_write_only_and_sealed(service: Service, tenant: Tenant):
    resp = await create(service, tenant, options={"stream": "orders", "maxLen": 1000})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["type"] == "redis"
    assert created["url"] == "redis://app:****@127.0.0.1:6379/0"
    assert created["options"] == {"stream": "orders", "maxLen": 1000}
    got = await service.client.get(f"{SUBS}/{created['id']}", headers=tenant.admin_headers)
    listed = await service.client.get(SUBS, headers=tenant.admin_headers)
    patched = await service.client.patch(
        f"{SUBS}/{created['id']}", headers=tenant.admin_headers, json={"description": "x"}
    )
    for text in (resp.text, got.text, listed.text, patched.text):
        assert PASSWORD not in text
    row = await stored_row(service, created["id"])
    assert row.url == created["url"]
    assert all(PASSWORD not in str(value) for value in row)
    sub = await subscription_cache(service.ctx).get(created["id"])
    assert sub is not None and sub.target_url == REDIS["url"]
    assert sub.type == "redis" and sub.options == {"stream": "orders", "maxLen": 1000}


async def test_a_lone_token_is_masked_too(service: Service, tenant: Tenant):
    resp = await create(
        service,
        tenant,
        type="nats",
        url="nats://tok3n-value@127.0.0.1:4222",
        options={"subject": "orders.created"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["url"] == "nats://****@127.0.0.1:4222"
    assert resp.json()["options"] == {"subject": "orders.created", "stream": None}
    sub = await subscription_cache(service.ctx).get(resp.json()["id"])
    assert sub is not None and sub.target_url == "nats://tok3n-value@127.0.0.1:4222"


async def test_patch_keeps_masked_credentials_only_at_the_same_place(
    service: Service, tenant: Tenant
):
    created = (await create(service, tenant)).json()
    url = f"{SUBS}/{created['id']}"
    headers = tenant.admin_headers
    # the URL as read, sent back with another database: the password is kept
    resp = await service.client.patch(
        url, headers=headers, json={"url": "redis://app:****@127.0.0.1:6379/2"}
    )
    assert resp.status_code == 200, resp.text
    sub = await subscription_cache(service.ctx).get(created["id"])
    assert sub is not None and sub.target_url == f"redis://app:{PASSWORD}@127.0.0.1:6379/2"
    # another host may not inherit the stored password
    resp = await service.client.patch(
        url, headers=headers, json={"url": "redis://app:****@127.0.0.2:6379/2"}
    )
    assert error_paths(resp) == ["url"]
    # options alone change; the type's rules still apply
    resp = await service.client.patch(url, headers=headers, json={"options": {"stream": "b"}})
    assert resp.json()["options"] == {"stream": "b", "maxLen": None}
    resp = await service.client.patch(url, headers=headers, json={"options": {"subject": "b"}})
    assert error_paths(resp) == ["options.stream", "options.subject"]
    # another type needs its own URL and options
    resp = await service.client.patch(url, headers=headers, json={"type": "nats"})
    assert error_paths(resp) == ["url"]
    resp = await service.client.patch(
        url,
        headers=headers,
        json={"type": "webhook", "url": "https://hooks.example.com/x", "options": None},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["type"] == "webhook" and resp.json()["options"] is None
    row = await stored_row(service, created["id"])
    assert row.destination_enc is None and row.options is None
    resp = await service.client.patch(url, headers=headers, json={"type": None})
    assert error_paths(resp) == ["type"]


REFUSALS: list[tuple[dict[str, Any], list[str]]] = [
    ({"url": "https://example.com/x"}, ["url"]),  # the scheme must be the type's
    ({"url": "nats://127.0.0.1:4222"}, ["url"]),
    ({"url": "redis://10.0.0.1:6379"}, ["url"]),  # a private address
    ({"url": "redis://127.0.0.1:0"}, ["url"]),
    ({"url": "redis://127.0.0.1:6379/#frag"}, ["url"]),
    ({"url": "redis://app:****@127.0.0.1:6379"}, ["url"]),  # nothing stored to keep
    ({"url": "redis://bad host:6379"}, ["url"]),
    ({"options": None}, ["options"]),
    ({"options": {}}, ["options.stream"]),
    ({"options": {"stream": "a", "extra": 1}}, ["options.extra"]),
    ({"options": {"stream": "a", "maxLen": 0}}, ["options.maxLen"]),
    ({"options": {"stream": "has space"}}, ["options.stream"]),
    (
        {"type": "nats", "url": "nats://127.0.0.1", "options": {"subject": "a.*"}},
        ["options.subject"],
    ),
    (
        {"type": "mqtt", "url": "mqtt://127.0.0.1", "options": {"topic": "t", "qos": 0}},
        ["options.qos"],
    ),
    ({"type": "mqtt", "url": "mqtt://127.0.0.1", "options": {"topic": "t/#"}}, ["options.topic"]),
    (
        {"type": "rabbitmq", "url": "amqp://127.0.0.1", "options": {"exchange": "x"}},
        ["options.routingKey"],
    ),
    (
        {
            "type": "rabbitmq",
            "url": "mqtt://127.0.0.1",
            "options": {"exchange": "x", "routingKey": "k"},
        },
        ["url"],
    ),
    (
        {"type": "webhook", "url": "https://hooks.example.com/x", "options": {"stream": "a"}},
        ["options"],
    ),
    ({"type": "kafka"}, ["type"]),
]


async def test_refusals_name_the_field(service: Service, tenant: Tenant):
    for body, paths in REFUSALS:
        resp = await create(service, tenant, **body)
        assert resp.status_code == 422, (body, resp.text)
        assert error_paths(resp) == paths, (body, resp.text)
    listed = await service.client.get(SUBS, headers=tenant.admin_headers)
    assert listed.json()["count"] == 0


async def test_every_type_and_scheme_is_accepted(service: Service, tenant: Tenant):
    cases = [
        ("redis", "rediss://h.example.com", {"stream": "s"}),
        ("nats", "tls://h.example.com:4443", {"subject": "a.b", "stream": "S"}),
        ("rabbitmq", "amqps://u:p@h.example.com/vhost", {"exchange": "", "routingKey": "q"}),
        ("mqtt", "mqtts://h.example.com", {"topic": "a/b", "qos": 2}),
    ]
    for type_, url, options in cases:
        resp = await create(service, tenant, type=type_, url=url, options=options)
        assert resp.status_code == 201, resp.text
        assert resp.json()["options"].items() >= options.items()
    assert resp.json()["url"] == "mqtts://h.example.com"


async def test_a_loopback_broker_needs_the_allow_list(tmp_path: Path):
    settings = make_settings(tmp_path, webhook_allow_cidrs="", run_workers=False)
    async with running_service(settings) as svc:
        tenant = await svc.tenant("strict")
        for url in ("redis://127.0.0.1:6379", "redis://localhost:6379", "redis://[::1]:6379"):
            resp = await create(svc, tenant, url=url)
            assert error_paths(resp) == ["url"], url
            assert "refused destination" in resp.json()["message"]
        resp = await create(svc, tenant, url="redis://redis.example.com:6379")
        assert resp.status_code == 201, resp.text


async def test_another_tenants_broker_subscription_is_404(
    service: Service, tenant: Tenant, other_tenant: Tenant
):
    theirs = (await create(service, other_tenant)).json()
    url = f"{SUBS}/{theirs['id']}"
    headers = tenant.admin_headers
    assert (await service.client.get(url, headers=headers)).status_code == 404
    resp = await service.client.patch(
        url, headers=headers, json={"url": "redis://app:****@127.0.0.1:6379/0"}
    )
    assert resp.status_code == 404
    assert PASSWORD not in resp.text
    assert (await service.client.post(f"{url}/test", headers=headers, json={})).status_code == 404
    assert (await service.client.delete(url, headers=headers)).status_code == 404
    listed = await service.client.get(SUBS, headers=headers)
    assert listed.json()["count"] == 0
    row = await stored_row(service, theirs["id"])
    assert row.url == theirs["url"]

"""Subscription endpoints of docs/reference.md §5.1 on both backends: shapes, secrets, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from causeflow.clock import ms_to_rfc3339
from causeflow.webhook.signing import check_secret
from causeflow.webhook.subscriptions import subscription_cache
from causeflow.webhook.tables import subscriptions
from tests.support.clock import FrozenClock
from tests.support.inproc import Service, Tenant, make_settings, running_service
from tests.support.webhook import (
    HOOK_URL,
    SUBS,
    append,
    create_sub,
    delivery_rows,
    dispatch_pending,
    error_paths,
)

pytestmark = pytest.mark.integration

READ_FIELDS = {
    "id",
    "url",
    "type",
    "options",
    "description",
    "events",
    "filter",
    "headers",
    "tls",
    "auth",
    "enabled",
    "disabledReason",
    "firstFailureAt",
    "rateLimitPerSecond",
    "ordering",
    "orderingKey",
    "createdAt",
    "updatedAt",
}


async def test_create_shows_the_secret_once_and_seals_it(service: Service, tenant: Tenant):
    created = await create_sub(
        service,
        tenant,
        events=["incident.created", "remediation.proposed"],
        description="pager",
        filter={"severity": ["critical", "high"]},
        headers={"Authorization": "Bearer hunter2hunter2"},
        rateLimitPerSecond=5,
    )
    assert set(created) == READ_FIELDS | {"secret"}
    assert created["id"].startswith("sub_")
    assert created["secret"].startswith("whsec_")
    check_secret(created["secret"])
    assert created["headers"] == {"Authorization": "<redacted>"}
    assert created["enabled"] is True and created["disabledReason"] is None
    assert created["rateLimitPerSecond"] == 5

    got = await service.client.get(f"{SUBS}/{created['id']}", headers=tenant.admin_headers)
    assert got.status_code == 200
    assert set(got.json()) == READ_FIELDS
    listed = await service.client.get(SUBS, headers=tenant.admin_headers)
    assert "secret" not in listed.json()["items"][0]
    assert "hunter2" not in got.text + listed.text

    async with service.ctx.db.read() as conn:
        row = (
            await conn.execute(select(subscriptions).where(subscriptions.c.id == created["id"]))
        ).one()
    assert created["secret"] not in row.secret_enc
    assert "hunter2" not in (row.headers_enc or "")
    sub = await subscription_cache(service.ctx).get(created["id"])
    assert sub is not None
    assert sub.secret == created["secret"]
    assert sub.headers == {"Authorization": "Bearer hunter2hunter2"}


async def test_a_given_secret_is_kept(service: Service, tenant: Tenant):
    created = await create_sub(service, tenant, secret="your-signing-secret")
    assert created["secret"] == "your-signing-secret"
    resp = await service.client.post(
        SUBS, headers=tenant.admin_headers, json={"url": HOOK_URL, "events": ["*"], "secret": "x"}
    )
    assert error_paths(resp) == ["secret"]


REFUSALS: list[tuple[dict[str, Any], list[str]]] = [
    ({"events": []}, ["events"]),
    ({"events": ["incident.created", "incident.exploded"]}, ["events.1"]),
    ({"events": ["*", "incident.created"]}, ["events"]),
    ({"url": "http://10.0.0.1/hook"}, ["url"]),
    ({"url": "https://169.254.169.254/latest/meta-data"}, ["url"]),
    ({"url": "https://[::ffff:192.168.0.1]/x"}, ["url"]),
    ({"url": "ftp://example.com/x"}, ["url"]),
    ({"url": "https://user:pw@example.com/x"}, ["url"]),
    ({"headers": {"Content-Type": "text/plain"}}, ["headers.Content-Type"]),
    ({"headers": {"webhook-signature": "v1,x", "X-Ok": "1"}}, ["headers.webhook-signature"]),
    ({"headers": {"Bad Name": "1"}}, ["headers.Bad Name"]),
    ({"headers": {"X-Inject": "a\r\nHost: evil"}}, ["headers.X-Inject"]),
    ({"filter": {"severity": {"$ne": 1}}}, ["filter.severity.$ne"]),  # not an operator
    ({"filter": {"severity": []}}, ["filter.severity"]),
    ({"rateLimitPerSecond": 0}, ["rateLimitPerSecond"]),
    ({"secret": "short"}, ["secret"]),
    ({"unknown": 1}, ["unknown"]),
]


async def test_create_refusals_name_the_field(service: Service, tenant: Tenant):
    for body, paths in REFUSALS:
        payload = {"url": HOOK_URL, "events": ["*"], **body}
        resp = await service.client.post(SUBS, headers=tenant.admin_headers, json=payload)
        assert error_paths(resp) == paths, body
    listed = await service.client.get(SUBS, headers=tenant.admin_headers)
    assert listed.json()["count"] == 0


async def test_https_is_required_unless_configured(tmp_path: Path):
    settings = make_settings(
        tmp_path, webhook_allow_http=False, webhook_allow_cidrs="", run_workers=False
    )
    async with running_service(settings) as svc:
        tenant = await svc.tenant("strict")
        resp = await svc.client.post(
            SUBS,
            headers=tenant.admin_headers,
            json={"url": "http://hooks.example.com/x", "events": ["*"]},
        )
        assert error_paths(resp) == ["url"]
        # loopback is refused without the allow-list, even over https
        resp = await svc.client.post(
            SUBS, headers=tenant.admin_headers, json={"url": "https://127.0.0.1/x", "events": ["*"]}
        )
        assert error_paths(resp) == ["url"]
        ok = await svc.client.post(
            SUBS,
            headers=tenant.admin_headers,
            json={"url": "https://hooks.example.com/x", "events": ["*"]},
        )
        assert ok.status_code == 201


async def test_list_pages_with_a_cursor(service: Service, tenant: Tenant):
    made = [(await create_sub(service, tenant))["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        resp = await service.client.get(SUBS, headers=tenant.admin_headers, params=params)
        body = resp.json()
        assert body["count"] == len(body["items"]) <= 2
        seen += [s["id"] for s in body["items"]]
        cursor = body["cursor"]
        if cursor is None:
            break
    assert seen == sorted(made)
    bad = await service.client.get(SUBS, headers=tenant.admin_headers, params={"cursor": "!!"})
    assert error_paths(bad) == ["cursor"]


async def test_per_tenant_cap_is_409(service: Service, tenant: Tenant, other_tenant: Tenant):
    service.ctx.settings.max_subscriptions_per_tenant = 2
    await create_sub(service, tenant)
    await create_sub(service, tenant)
    resp = await service.client.post(
        SUBS, headers=tenant.admin_headers, json={"url": HOOK_URL, "events": ["*"]}
    )
    assert resp.status_code == 409 and resp.json()["error"] == "limit_reached"
    await create_sub(service, other_tenant)  # the cap is per tenant


async def test_patch_changes_fields_and_keeps_redacted_headers(service: Service, tenant: Tenant):
    sub = await create_sub(
        service, tenant, headers={"Authorization": "Bearer abc", "X-Team": "ops"}
    )
    url = f"{SUBS}/{sub['id']}"
    resp = await service.client.patch(
        url,
        headers=tenant.admin_headers,
        json={
            "description": "changed",
            "headers": {"Authorization": "<redacted>", "X-Env": "prod"},
            "rateLimitPerSecond": 3,
            "filter": {"severity": "critical"},
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["description"] == "changed"
    assert body["headers"] == {"Authorization": "<redacted>", "X-Env": "<redacted>"}
    assert body["filter"] == {"severity": "critical"}
    assert body["rateLimitPerSecond"] == 3
    cached = await subscription_cache(service.ctx).get(sub["id"])
    assert cached is not None
    assert cached.headers == {"Authorization": "Bearer abc", "X-Env": "prod"}

    cleared = await service.client.patch(
        url, headers=tenant.admin_headers, json={"filter": None, "rateLimitPerSecond": None}
    )
    assert cleared.json()["filter"] is None and cleared.json()["rateLimitPerSecond"] is None

    disabled = await service.client.patch(
        url, headers=tenant.admin_headers, json={"enabled": False}
    )
    assert disabled.json()["enabled"] is False and disabled.json()["disabledReason"]
    enabled = await service.client.patch(url, headers=tenant.admin_headers, json={"enabled": True})
    assert enabled.json()["enabled"] is True and enabled.json()["disabledReason"] is None

    for body_, path in [
        ({"url": "https://192.168.1.1/x"}, "url"),
        ({"events": ["nope"]}, "events.0"),
        ({"events": None}, "events"),
        ({"headers": {"X-New": "<redacted>"}}, "headers.X-New"),
        ({"headers": {"Host": "x"}}, "headers.Host"),
        ({"secret": "a-new-secret-of-length"}, "secret"),
    ]:
        resp = await service.client.patch(url, headers=tenant.admin_headers, json=body_)
        assert error_paths(resp) == [path], body_


async def test_delete_cancels_pending_deliveries(service: Service, tenant: Tenant):
    sub = await create_sub(service, tenant)
    keep = await create_sub(service, tenant)
    for _ in range(3):
        await append(service, tenant)
    await dispatch_pending(service.ctx)
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    assert len(rows) == 3
    from tests.support.webhook import set_delivery

    await set_delivery(service, rows[0].id, status="succeeded", next_attempt_at=None)

    resp = await service.client.delete(f"{SUBS}/{sub['id']}", headers=tenant.admin_headers)
    assert resp.status_code == 204
    statuses = sorted(
        r.status for r in await delivery_rows(service, tenant, subscription_id=sub["id"])
    )
    assert statuses == ["cancelled", "cancelled", "succeeded"]
    assert {r.status for r in await delivery_rows(service, tenant, subscription_id=keep["id"])} == {
        "pending"
    }
    gone = await service.client.get(f"{SUBS}/{sub['id']}", headers=tenant.admin_headers)
    assert gone.status_code == 404
    again = await service.client.delete(f"{SUBS}/{sub['id']}", headers=tenant.admin_headers)
    assert again.status_code == 404
    # after the delete nothing new is dispatched to it
    await append(service, tenant)
    await dispatch_pending(service.ctx)
    assert len(await delivery_rows(service, tenant, subscription_id=sub["id"])) == 3


async def test_rotation_keeps_the_old_secret_for_the_overlap(tmp_path: Path, database_url: str):
    clock = FrozenClock()
    start = clock.now_ms()
    settings = make_settings(
        tmp_path, database_url, run_workers=False, webhook_rotation_overlap_seconds=3600
    )
    async with running_service(settings, clock) as svc:
        tenant = await svc.tenant("rotating")
        sub = await create_sub(svc, tenant)
        old = sub["secret"]
        url = f"{SUBS}/{sub['id']}/rotate-secret"
        resp = await svc.client.post(url, headers=tenant.admin_headers)
        assert resp.status_code == 200, resp.text
        new = resp.json()["secret"]
        assert new != old and new.startswith("whsec_")
        assert resp.json()["previousSecretExpiresAt"] == ms_to_rfc3339(start + 3_600_000)
        got = await svc.client.get(f"{SUBS}/{sub['id']}", headers=tenant.admin_headers)
        assert "secret" not in got.json() and new not in got.text

        cached = await subscription_cache(svc.ctx).get(sub["id"])
        assert cached is not None
        assert cached.signing_secrets(clock.now_ms()) == [new, old]
        clock.advance(3599)
        assert cached.signing_secrets(clock.now_ms()) == [new, old]
        clock.advance(2)
        assert cached.signing_secrets(clock.now_ms()) == [new]

        # installing a known secret; the one it replaces overlaps, the older one is gone
        chosen = "receiver-known-secret-123"
        resp = await svc.client.post(url, headers=tenant.admin_headers, json={"secret": chosen})
        assert resp.json()["secret"] == chosen
        cached = await subscription_cache(svc.ctx).get(sub["id"])
        assert cached is not None
        assert cached.signing_secrets(clock.now_ms()) == [chosen, new]
        bad = await svc.client.post(url, headers=tenant.admin_headers, json={"secret": "short"})
        assert error_paths(bad) == ["secret"]

"""The API key routes (`apikeys/router.py`): a new key and its signing secret are shown once, and
the list pages through a tenant's keys. Isolation between tenants is in tests/user/, scopes and
revocation in tests/auth/."""

from __future__ import annotations

import pytest

from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration


async def test_ingest_key_has_a_webhook_secret_shown_once(service: Service, tenant: Tenant):
    resp = await service.client.post(
        "/v1/api-keys",
        headers=tenant.admin_headers,
        json={"name": "grafana", "scopes": ["alerts:ingest"]},
    )
    body = resp.json()
    assert body["key"].startswith("cflo_") and len(body["key"]) == 69
    assert body["webhookSecret"].startswith("whsec_")
    again = await service.client.get(f"/v1/api-keys/{body['id']}", headers=tenant.admin_headers)
    assert "webhookSecret" not in again.json() and "key" not in again.json()


async def test_pages_of_keys(service: Service, tenant: Tenant):
    for i in range(5):
        await service.client.post(
            "/v1/api-keys",
            headers=tenant.admin_headers,
            json={"name": f"k{i}", "scopes": ["events:read"]},
        )
    ids, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (
            await service.client.get("/v1/api-keys", headers=tenant.admin_headers, params=params)
        ).json()
        assert page["count"] == len(page["items"]) <= 3
        ids += [k["id"] for k in page["items"]]
        cursor = page["cursor"]
        if not cursor:
            break
    assert len(ids) == 7 and ids == sorted(ids)  # 2 provisioned + 5

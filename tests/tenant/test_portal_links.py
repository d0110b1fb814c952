"""Minting portal links: who may mint one for which tenant, and what the answer holds."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from causeflow.auth.tokens import PORTAL_AUDIENCE
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration


def _platform(service: Service) -> dict[str, str]:
    token = service.ctx.tokens.mint_platform_admin(now=service.ctx.clock.now(), ttl=600)
    return {"Authorization": f"Bearer {token}"}


async def _key(service: Service, tenant: Tenant, scope: str) -> dict[str, str]:
    response = await service.client.post(
        "/v1/api-keys", headers=tenant.admin_headers, json={"name": scope, "scopes": [scope]}
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


def _claims(service: Service, url: str) -> dict[str, object]:
    parts = urlsplit(url)
    assert parts.path == "/ui/portal"
    token = parse_qs(parts.query)["link"][0]
    return jwt.decode(token, options={"verify_signature": False}, audience=PORTAL_AUDIENCE)


async def test_a_tenant_admin_mints_a_link_to_its_own_tenant(
    service: Service, tenant: Tenant
) -> None:
    now = service.ctx.clock.now()
    for headers in (tenant.admin_headers, tenant.key_headers):
        response = await service.client.post(
            "/v1/portal-links", headers=headers, json={"role": "viewer"}
        )
        assert response.status_code == 201, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["tenantId"] == tenant.id and body["role"] == "viewer"
        assert body["url"].startswith("http://cf.test/ui/portal?link=")
        claims = _claims(service, body["url"])
        assert claims["tenant_id"] == tenant.id and claims["role"] == "viewer"
        assert now + 299 <= int(claims["exp"]) <= now + 301  # type: ignore[call-overload]
    admin = await service.client.post(
        "/v1/portal-links", headers=tenant.admin_headers, json={"role": "admin", "expiresIn": 3600}
    )
    assert admin.status_code == 201
    assert _claims(service, admin.json()["url"])["role"] == "admin"


async def test_who_may_not_mint_a_link(service: Service, tenant: Tenant) -> None:
    refused = {
        "events:read key": await _key(service, tenant, "events:read"),
        "events:publish key": await _key(service, tenant, "events:publish"),
        "member token": service.token(tenant, "member"),
        "platform admin (no tenant of its own)": _platform(service),
        "nobody": {},
    }
    for who, headers in refused.items():
        response = await service.client.post(
            "/v1/portal-links", headers=headers, json={"role": "viewer"}
        )
        assert response.status_code in (401, 403), who
        assert {"error", "message"} <= set(response.json()), who


async def test_only_the_platform_admin_mints_for_a_named_tenant(
    service: Service, tenant: Tenant, other_tenant: Tenant
) -> None:
    path = f"/v1/tenants/{tenant.id}/portal-links"
    ok = await service.client.post(path, headers=_platform(service), json={"role": "admin"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["tenantId"] == tenant.id
    assert _claims(service, ok.json()["url"])["tenant_id"] == tenant.id
    # A tenant's admin mints for no tenant by id, its own or another.
    for headers in (other_tenant.admin_headers, tenant.admin_headers, tenant.key_headers):
        response = await service.client.post(path, headers=headers, json={"role": "viewer"})
        assert response.status_code == 403, response.text
    for missing in ("ten_01JZZZZZZZZZZZZZZZZZZZZZZZ", "nope%00", "ten_"):
        response = await service.client.post(
            f"/v1/tenants/{missing}/portal-links",
            headers=_platform(service),
            json={"role": "viewer"},
        )
        # (a NUL is refused by the gateway before any route: 400)
        assert response.status_code == (400 if "%00" in missing else 404), response.text


async def test_bodies_that_are_refused(service: Service, tenant: Tenant) -> None:
    for body in (
        {},
        {"role": "member"},
        {"role": "platform_admin"},
        {"role": "viewer", "expiresIn": 3601},
        {"role": "viewer", "expiresIn": 0},
        {"role": "viewer", "expiresIn": "300"},
        {"role": "viewer", "tenantId": "ten_other"},
        ["viewer"],
    ):
        response = await service.client.post(
            "/v1/portal-links", headers=tenant.admin_headers, json=body
        )
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"] == "validation_error"

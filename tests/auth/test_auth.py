"""Credentials: every rejection is 401/403 in the error shape (docs/reference.md §8.2, §8.7)."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration


def assert_error(resp, status: int, code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) <= {"error", "message", "details"} and body["message"]
    if code:
        assert body["error"] == code


async def test_no_credentials_is_401(service: Service):
    assert_error(await service.client.get("/v1/events"), 401, "unauthorized")


@pytest.mark.parametrize(
    "header",
    [
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"X-API-Key": "cflo_" + "0" * 64},
        {"X-API-Key": "something"},
        {"Authorization": "Bearer cflo_" + "1" * 64},
    ],
)
async def test_bad_credentials_are_401(service: Service, header: dict):
    assert_error(await service.client.get("/v1/events", headers=header), 401)


async def test_forged_and_expired_tokens(service: Service, tenant: Tenant):
    now = int(time.time())
    base = {
        "iss": "causeflow",
        "aud": "causeflow-api",
        "sub": "u",
        "tenant_id": tenant.id,
        "roles": ["admin"],
        "exp": now + 600,
    }
    forged = jwt.encode(base, "not-the-secret-but-long-enough-to-be-hmac-key", algorithm="HS256")
    none_alg = jwt.encode(base, None, algorithm="none")
    good_secret = service.ctx.keys.jwt_secret
    wrong_aud = jwt.encode({**base, "aud": "other"}, good_secret, algorithm="HS256")
    wrong_iss = jwt.encode({**base, "iss": "other"}, good_secret, algorithm="HS256")
    expired = jwt.encode({**base, "exp": now - 5}, good_secret, algorithm="HS256")
    for token in (forged, none_alg, wrong_aud, wrong_iss, expired):
        resp = await service.client.get("/v1/events", headers={"Authorization": f"Bearer {token}"})
        assert_error(resp, 401)
    ok = jwt.encode(base, good_secret, algorithm="HS256")
    resp = await service.client.get("/v1/events", headers={"Authorization": f"Bearer {ok}"})
    assert resp.status_code == 200


async def test_roles_and_scopes(service: Service, tenant: Tenant):
    member = service.token(tenant, "member")
    assert (await service.client.get("/v1/events", headers=member)).status_code == 200
    assert_error(
        await service.client.post("/v1/users", headers=member, json={"email": "a@b.c"}),
        403,
        "forbidden",
    )
    assert_error(await service.client.get("/v1/tenants", headers=tenant.admin_headers), 403)
    reader = await service.client.post(
        "/v1/api-keys", headers=tenant.admin_headers, json={"name": "r", "scopes": ["events:read"]}
    )
    key = {"X-API-Key": reader.json()["key"]}
    assert (await service.client.get("/v1/events", headers=key)).status_code == 200
    assert_error(
        await service.client.post(
            "/v1/api-keys", headers=key, json={"name": "x", "scopes": ["admin"]}
        ),
        403,
    )


async def test_revoked_key_stops_working(service: Service, tenant: Tenant):
    created = await service.client.post(
        "/v1/api-keys",
        headers=tenant.admin_headers,
        json={"name": "tmp", "scopes": ["events:read"]},
    )
    key_id, key = created.json()["id"], created.json()["key"]
    assert (await service.client.get("/v1/events", headers={"X-API-Key": key})).status_code == 200
    assert (
        await service.client.delete(f"/v1/api-keys/{key_id}", headers=tenant.admin_headers)
    ).status_code == 204
    assert_error(await service.client.get("/v1/events", headers={"X-API-Key": key}), 401)


async def test_keys_are_hashed_and_secrets_sealed(service: Service, tenant: Tenant):
    from sqlalchemy import select

    from causeflow.auth.tables import api_keys

    async with service.ctx.db.read() as conn:
        rows = (await conn.execute(select(api_keys))).all()
    stored = " ".join(str(tuple(r)) for r in rows)
    assert tenant.api_key not in stored and tenant.ingest_key not in stored
    assert tenant.webhook_secret not in stored
    # the key list never shows a key again
    listed = await service.client.get("/v1/api-keys", headers=tenant.admin_headers)
    assert tenant.api_key not in listed.text and "key" not in listed.json()["items"][0]


async def test_platform_admin_manages_tenants(service: Service):
    token = service.ctx.tokens.mint_platform_admin(now=time.time(), ttl=60)
    hdr = {"Authorization": f"Bearer {token}"}
    created = await service.client.post(
        "/v1/tenants", headers=hdr, json={"name": "initech", "plan": "pro"}
    )
    assert created.status_code == 201 and created.json()["apiKey"].startswith("cflo_")
    listed = await service.client.get("/v1/tenants", headers=hdr)
    assert "initech" in [t["name"] for t in listed.json()["items"]]
    # a platform admin holds no tenant's data
    assert_error(await service.client.get("/v1/events", headers=hdr), 403)
    key = {"X-API-Key": created.json()["apiKey"]}
    events = (await service.client.get("/v1/events", headers=key)).json()["items"]
    assert [e["event"] for e in events] == ["tenant.created"]
    assert events[0]["data"]["plan"] == "pro"

"""Tenants, users and API keys: endpoints, their events in the same transaction, isolation."""

from __future__ import annotations

import pytest

from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration


async def _events(service: Service, tenant: Tenant, prefix: str) -> list[dict]:
    items = (
        await service.client.get("/v1/events", headers=tenant.key_headers, params={"limit": 100})
    ).json()["items"]
    return [e for e in items if e["event"].startswith(prefix)]


async def test_user_lifecycle_emits_events(service: Service, tenant: Tenant):
    hdr = tenant.admin_headers
    created = await service.client.post(
        "/v1/users", headers=hdr, json={"email": "Ada@Example.com", "role": "member"}
    )
    assert created.status_code == 201
    user = created.json()
    assert user["email"] == "ada@example.com" and user["id"].startswith("usr_")
    dup = await service.client.post("/v1/users", headers=hdr, json={"email": "ada@example.com"})
    assert dup.status_code == 409
    patched = await service.client.patch(
        f"/v1/users/{user['id']}", headers=hdr, json={"role": "admin"}
    )
    assert patched.json()["role"] == "admin"
    assert (await service.client.delete(f"/v1/users/{user['id']}", headers=hdr)).status_code == 204
    assert (await service.client.get(f"/v1/users/{user['id']}", headers=hdr)).status_code == 404
    events = await _events(service, tenant, "user.")
    assert [e["event"] for e in events] == ["user.created", "user.updated", "user.deleted"]
    assert events[0]["data"] == {"userId": user["id"], "email": "ada@example.com", "role": "member"}
    assert events[1]["data"]["changes"] == {"role": "admin"}
    assert events[2]["data"]["email"] == "ada@example.com"


async def test_invalid_user_bodies(service: Service, tenant: Tenant):
    for body in (
        {"email": "nope"},
        {"email": "a@b.c", "role": "owner"},
        {"email": "a@b.c", "extra": 1},
    ):
        resp = await service.client.post("/v1/users", headers=tenant.admin_headers, json=body)
        assert resp.status_code == 422 and resp.json()["error"] == "validation_error"
    # a failed request leaves no event behind
    assert await _events(service, tenant, "user.") == []


async def test_tenant_settings_emit_tenant_updated(service: Service, tenant: Tenant):
    resp = await service.client.patch(
        "/v1/tenant",
        headers=tenant.admin_headers,
        json={
            "name": "Acme Corp",
            "inbound": {
                "requireSignature": True,
                "secrets": {"sentry": "s3cr3t-value"},
                "snsTopicArns": ["arn:aws:sns:us-east-1:123456789012:alarms"],
            },
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["name"] == "Acme Corp"
    assert body["inbound"]["requireSignature"] is True
    assert body["inbound"]["secretsConfigured"] == ["sentry"]
    assert "s3cr3t-value" not in resp.text  # write-only
    event = (await _events(service, tenant, "tenant.updated"))[0]
    assert event["data"]["changes"]["name"] == "Acme Corp"
    assert event["data"]["changes"]["inbound.secrets.sentry"] == "set"
    assert "s3cr3t-value" not in str(event)
    got = await service.client.get("/v1/tenant", headers=service.token(tenant, "member"))
    assert got.json()["name"] == "Acme Corp"
    member = await service.client.patch(
        "/v1/tenant", headers=service.token(tenant, "member"), json={"name": "x"}
    )
    assert member.status_code == 403


async def test_users_and_keys_are_isolated(service: Service, tenant: Tenant, other_tenant: Tenant):
    user = (
        await service.client.post(
            "/v1/users", headers=tenant.admin_headers, json={"email": "a@acme.test"}
        )
    ).json()
    key = (
        await service.client.post(
            "/v1/api-keys",
            headers=tenant.admin_headers,
            json={"name": "k", "scopes": ["events:read"]},
        )
    ).json()
    foreign = other_tenant.admin_headers
    assert (await service.client.get(f"/v1/users/{user['id']}", headers=foreign)).status_code == 404
    assert (
        await service.client.patch(
            f"/v1/users/{user['id']}", headers=foreign, json={"role": "admin"}
        )
    ).status_code == 404
    assert (
        await service.client.delete(f"/v1/users/{user['id']}", headers=foreign)
    ).status_code == 404
    assert (
        await service.client.get(f"/v1/api-keys/{key['id']}", headers=foreign)
    ).status_code == 404
    assert (
        await service.client.delete(f"/v1/api-keys/{key['id']}", headers=foreign)
    ).status_code == 404
    listed = (await service.client.get("/v1/users", headers=foreign)).json()
    assert listed["items"] == []

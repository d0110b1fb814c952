"""`Idempotency-Key` and authorization: a stored answer is replayed only to the caller that made
the request, after the route's permission check; responses carrying secrets (API keys, signing
secrets, stream tickets) are never readable from the database; the platform admin's requests
are idempotent too; an external identity provider's token never manages tenants."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import select

from causeflow.api.tables import idempotency_keys
from tests.support.inproc import Service, Tenant, make_settings, running_service

pytestmark = pytest.mark.integration


def _platform(service: Service) -> dict[str, str]:
    token = service.ctx.tokens.mint_platform_admin(now=service.ctx.clock.now(), ttl=600)
    return {"Authorization": f"Bearer {token}"}


async def _key(service: Service, tenant: Tenant, *scopes: str) -> dict[str, str]:
    resp = await service.client.post(
        "/v1/api-keys", headers=tenant.admin_headers, json={"name": "k", "scopes": list(scopes)}
    )
    assert resp.status_code == 201, resp.text
    return {"X-API-Key": resp.json()["key"]}


def _with(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def _stored(service: Service) -> tuple[str, list[str]]:
    """Every column of every idempotency record as one string, and the records' states."""
    async with service.ctx.db.read() as conn:
        rows = (await conn.execute(select(idempotency_keys))).all()
    return "\n".join(str(value) for row in rows for value in row), [row.state for row in rows]


async def test_a_replay_is_authorized_like_the_request(service: Service, tenant: Tenant):
    admin = tenant.admin_headers
    member = service.token(tenant, "member")
    ingest = {"X-API-Key": tenant.ingest_key}
    body = {"name": "ci", "scopes": ["admin"]}
    first = await service.client.post("/v1/api-keys", headers=_with(admin, "k-1"), json=body)
    assert first.status_code == 201
    for other in (member, ingest):
        resp = await service.client.post("/v1/api-keys", headers=_with(other, "k-1"), json=body)
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"] == "forbidden"
        assert "idempotent-replayed" not in resp.headers
        assert first.json()["key"] not in resp.text

    # the caller that made the request gets its answer again, secret included
    again = await service.client.post("/v1/api-keys", headers=_with(admin, "k-1"), json=body)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()

    # the same goes for a subscription's secret and a rotated secret
    sub_body = {"url": "https://hooks.example.com/a", "events": ["*"]}
    sub = await service.client.post(
        "/v1/webhook-subscriptions", headers=_with(admin, "s-1"), json=sub_body
    )
    assert sub.status_code == 201
    rotate = f"/v1/webhook-subscriptions/{sub.json()['id']}/rotate-secret"
    rotated = await service.client.post(rotate, headers=_with(admin, "r-1"), json={})
    assert rotated.status_code == 200, rotated.text
    for path, key, req in (
        ("/v1/webhook-subscriptions", "s-1", sub_body),
        (rotate, "r-1", {}),
    ):
        for other in (member, ingest):
            resp = await service.client.post(path, headers=_with(other, key), json=req)
            assert resp.status_code == 403, (path, resp.text)
            assert "whsec_" not in resp.text


async def test_another_caller_with_the_same_key_gets_its_own_answer(
    service: Service, tenant: Tenant
):
    first_key = await _key(service, tenant, "admin")
    second_key = await _key(service, tenant, "admin")
    body = {"name": "ci", "scopes": ["events:read"]}
    a = await service.client.post("/v1/api-keys", headers=_with(first_key, "same"), json=body)
    b = await service.client.post("/v1/api-keys", headers=_with(second_key, "same"), json=body)
    assert a.status_code == b.status_code == 201
    assert "idempotent-replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"] and a.json()["key"] != b.json()["key"]

    # tickets are secrets too: one caller's ticket never reaches another
    reader = await _key(service, tenant, "events:read")
    t1 = await service.client.post(
        "/v1/notifications/stream-tickets", headers=_with(tenant.admin_headers, "t")
    )
    t2 = await service.client.post("/v1/notifications/stream-tickets", headers=_with(reader, "t"))
    assert t1.status_code == t2.status_code == 201
    assert "idempotent-replayed" not in t2.headers
    assert t1.json()["ticket"] != t2.json()["ticket"]


async def test_secrets_shown_once_are_not_stored_readable(service: Service, tenant: Tenant):
    admin = tenant.admin_headers
    shown: list[str] = []
    created = await service.client.post(
        "/v1/api-keys",
        headers=_with(admin, "a"),
        json={"name": "hook", "scopes": ["alerts:ingest"]},
    )
    shown += [created.json()["key"], created.json()["webhookSecret"]]
    sub = await service.client.post(
        "/v1/webhook-subscriptions",
        headers=_with(admin, "b"),
        json={"url": "https://hooks.example.com/b", "events": ["*"]},
    )
    shown.append(sub.json()["secret"])
    mine = "client-chosen-secret-" + "x" * 12
    rotated = await service.client.post(
        f"/v1/webhook-subscriptions/{sub.json()['id']}/rotate-secret",
        headers=_with(admin, "c"),
        json={"secret": mine},
    )
    assert rotated.status_code == 200, rotated.text
    shown.append(mine)
    ticket = await service.client.post(
        "/v1/notifications/stream-tickets", headers=_with(admin, "d")
    )
    shown.append(ticket.json()["ticket"])
    tenant_made = await service.client.post(
        "/v1/tenants", headers=_with(_platform(service), "e"), json={"name": "beta"}
    )
    assert tenant_made.status_code == 201
    shown.append(tenant_made.json()["apiKey"])
    assert all(shown)

    stored, states = await _stored(service)
    for secret in shown:
        assert secret not in stored
    assert states == ["done"] * 5  # every request above was recorded


async def test_platform_admin_requests_are_idempotent(service: Service):
    platform = _with(_platform(service), "tenant-1")
    first = await service.client.post("/v1/tenants", headers=platform, json={"name": "gamma"})
    again = await service.client.post("/v1/tenants", headers=platform, json={"name": "gamma"})
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    listed = (await service.client.get("/v1/tenants", headers=platform)).json()["items"]
    assert [t["name"] for t in listed].count("gamma") == 1
    reused = await service.client.post("/v1/tenants", headers=platform, json={"name": "delta"})
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"


def _jwks(tmp_path: Path) -> tuple[Path, Any, Any]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    rsa_jwk.update({"kid": "idp-rsa", "alg": "RS256", "use": "sig"})
    ec_jwk = json.loads(ECAlgorithm.to_jwk(ec_key.public_key()))
    ec_jwk.update({"kid": "idp-ec", "alg": "ES256", "use": "sig"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_jwk, ec_jwk]}))
    return path, rsa_key, ec_key


async def test_external_tokens_never_manage_tenants(tmp_path: Path):
    jwks, rsa_key, ec_key = _jwks(tmp_path)
    async with running_service(make_settings(tmp_path, jwks_file=str(jwks))) as svc:
        tenant = await svc.tenant()
        base = {"iss": "causeflow", "aud": "causeflow-api", "sub": "u1"}
        base["exp"] = int(time.time()) + 300  # type: ignore[assignment]
        for alg, key, kid in (("RS256", rsa_key, "idp-rsa"), ("ES256", ec_key, "idp-ec")):
            signed = {"algorithm": alg, "headers": {"kid": kid}}
            no_tenant = jwt.encode({**base, "roles": ["platform_admin"]}, key, **signed)
            with_tenant = jwt.encode(
                {**base, "roles": ["platform_admin", "admin"], "tenant_id": tenant.id},
                key,
                **signed,
            )
            for token, status in ((no_tenant, 401), (with_tenant, 403)):
                hdr = {"Authorization": f"Bearer {token}"}
                for method, path, body in (
                    ("GET", "/v1/tenants", None),
                    ("POST", "/v1/tenants", {"name": "evil"}),
                    ("PATCH", f"/v1/tenants/{tenant.id}", {"plan": "starter"}),
                ):
                    resp = await svc.client.request(method, path, headers=hdr, json=body)
                    assert resp.status_code == status, (alg, method, path, resp.text)
            # the tenant roles such a token carries still count, within its tenant
            ok = await svc.client.get(
                "/v1/tenant", headers={"Authorization": f"Bearer {with_tenant}"}
            )
            assert ok.status_code == 200 and ok.json()["id"] == tenant.id
        # the service's own platform token still manages tenants; nothing was created above
        listed = await svc.client.get("/v1/tenants", headers=_platform(svc))
        assert listed.status_code == 200
        assert [t["id"] for t in listed.json()["items"]] == [tenant.id]

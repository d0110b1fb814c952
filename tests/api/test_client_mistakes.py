"""Client mistakes that used to end in a 500: each is a 4xx in the error shape now, and nothing
is stored for it."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from causeflow.errors import ValidationFailed
from causeflow.webhook.filters import check_filter
from causeflow_sdk.models import sample_data
from tests.support.dashboard import sign_in
from tests.support.inbound import count_rows
from tests.support.inproc import Service, Tenant, make_settings, running_service

pytestmark = pytest.mark.integration


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def error(resp, status: int) -> str:  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert isinstance(body["message"], str) and body["message"]
    return str(body["error"])


async def events_count(service: Service, tenant: Tenant) -> int:
    resp = await service.client.get("/v1/events", headers=tenant.key_headers, params={"limit": 100})
    return int(resp.json()["count"])


async def test_deep_nesting_is_refused_on_inbound_and_events(service: Service, tenant: Tenant):
    before = await count_rows(service)
    for depth in (255, 256, 300):
        inbound = b'{"externalId": "x", "title": "t", "labels": {"deep": ' + deep(depth) + b"}}"
        resp = await service.client.post(
            f"/v1/webhooks/{tenant.id}/custom",
            content=inbound,
            headers={"X-API-Key": tenant.ingest_key, "Content-Type": "application/json"},
        )
        assert error(resp, 400) == "invalid_payload"
        assert "nested deeper" in resp.json()["message"]
        data = orjson.dumps(sample_data("incident.created", title="deep"))
        event = b'{"event": "incident.created", "data": ' + data[:-1] + b',"x":' + deep(depth)
        resp = await service.client.post(
            "/v1/events",
            content=event + b"}}",
            headers={**tenant.key_headers, "Content-Type": "application/json"},
        )
        assert error(resp, 422) == "validation_error"
        assert resp.json()["details"]["errors"][0]["path"] == "body"
    assert await count_rows(service) == before


async def test_non_finite_and_huge_numbers_in_event_data_are_refused(
    service: Service, tenant: Tenant
):
    before = await events_count(service, tenant)
    data = orjson.dumps({**sample_data("incident.created", title="n"), "extra": "@"})
    for literal in ("NaN", "Infinity", "-Infinity", str(2**64), str(-(2**70)), "1e400"):
        body = b'{"event": "incident.created", "data": ' + data.replace(b'"@"', literal.encode())
        resp = await service.client.post(
            "/v1/events",
            content=body + b"}",
            headers={**tenant.key_headers, "Content-Type": "application/json"},
        )
        assert error(resp, 422) == "validation_error", literal
    assert await events_count(service, tenant) == before  # not stored (as null or otherwise)


async def test_huge_integers_in_subscription_filters_are_refused(service: Service, tenant: Tenant):
    for value in (2**64, -(2**70), [1, 2**70]):
        body = {"url": "https://hooks.example.com/x", "events": ["*"], "filter": {"n": value}}
        resp = await service.client.post(
            "/v1/webhook-subscriptions",
            content=json.dumps(body).encode(),
            headers={**tenant.admin_headers, "Content-Type": "application/json"},
        )
        assert error(resp, 422) == "validation_error"
    listed = await service.client.get("/v1/webhook-subscriptions", headers=tenant.admin_headers)
    assert listed.json()["count"] == 0
    # The rule itself, for callers that do not come through a request body.
    for value in (2**63, -(2**63) - 1, [0, 2**70]):
        with pytest.raises(ValidationFailed) as info:
            check_filter({"n": value})
        assert info.value.details == {
            "errors": [{"path": "filter.n", "message": info.value.message}]
        }
    assert check_filter({"n": 2**63 - 1, "m": [-(2**63)], "b": True}) is not None


def _relabelled(token: str, **changes: object) -> str:
    head, payload, signature = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    header.update(changes)
    new_head = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{new_head}.{payload}.{signature}"


async def test_tokens_relabelled_to_another_algorithm_are_401(tmp_path: Path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_jwk = {**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r", "alg": "RS256"}
    ec_jwk = {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e", "alg": "ES256"}
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [rsa_jwk, ec_jwk]}))
    settings = make_settings(tmp_path, jwks_file=str(jwks))
    async with running_service(settings) as svc:
        tenant = await svc.tenant()
        claims = {
            "iss": "causeflow",
            "aud": "causeflow-api",
            "sub": "u1",
            "tenant_id": tenant.id,
            "roles": ["member"],
            "exp": int(time.time()) + 300,
        }
        rs = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "r"})
        es = jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "e"})
        for good in (rs, es):
            resp = await svc.client.get("/v1/events", headers={"Authorization": f"Bearer {good}"})
            assert resp.status_code == 200, resp.text
        for forged in (
            _relabelled(rs, alg="ES256"),
            _relabelled(es, alg="RS256"),
            _relabelled(rs, kid=["r"]),
        ):
            resp = await svc.client.get("/v1/events", headers={"Authorization": f"Bearer {forged}"})
            assert error(resp, 401) == "invalid_token"


async def test_a_credential_no_header_can_carry_is_refused_at_sign_in(tmp_path: Path):
    async with running_service(make_settings(tmp_path)) as svc:
        for credential in ("ключ", "cflo_" + "€" * 60, "tok\u2028en", "eyJ\x7f.a.b", "cflo_ 00"):
            resp = await sign_in(svc.client, credential)
            assert resp.status_code == 401, (credential, resp.text)
            assert "not valid" in resp.text
            assert "cf_session" not in svc.client.cookies

"""Requests a hostile or careless client can send, and what the service must answer."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from causeflow.app import create_app
from causeflow.db.migrate import migrate
from causeflow.settings import Settings
from causeflow.tenant.service import provision
from tests.support.inproc import make_settings
from tests.support.jwks import new_signing_key

pytestmark = pytest.mark.integration


@asynccontextmanager
async def _app(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The app with a client that sees a 500 as a response (as a real client would)."""
    await migrate(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(
            app=app, client=("127.0.0.1", 40000), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://cf.test") as client:
            yield app.state.ctx, client


def _idp(tmp_path: Path) -> tuple[Path, Any, Any]:
    """A JWKS file with one EC (`ec1`) and one RSA (`rsa1`) signing key."""
    ec_key, ec_jwk = new_signing_key("ec1")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    rsa_jwk.update({"kid": "rsa1", "use": "sig"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [ec_jwk, rsa_jwk]}))
    return path, ec_key, rsa_key


def _claims(tenant_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "iss": "causeflow",
        "aud": "causeflow-api",
        "sub": "u1",
        "tenant_id": tenant_id,
        "roles": ["admin"],
        "exp": int(time.time()) + 600,
        **extra,
    }


async def test_external_token_whose_alg_does_not_fit_its_key_is_401(tmp_path: Path):
    # Expected: a token labelled RS256 naming the IdP's EC key (or ES256 naming its RSA key)
    # is an invalid token, 401 invalid_token; never an unhandled error (500).
    jwks, ec_key, rsa_key = _idp(tmp_path)
    async with _app(make_settings(tmp_path, jwks_file=str(jwks))) as (ctx, client):
        tenant = (await provision(ctx, name="acme")).tenant["id"]
        relabelled = [
            jwt.encode(_claims(tenant), rsa_key, algorithm="RS256", headers={"kid": "ec1"}),
            jwt.encode(_claims(tenant), ec_key, algorithm="ES256", headers={"kid": "rsa1"}),
        ]
        for token in relabelled:
            resp = await client.get("/v1/events", headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 401, resp.text
            assert resp.json()["error"] == "invalid_token"


async def test_external_token_is_not_a_stream_ticket(tmp_path: Path):
    # Expected: only the service mints stream tickets; an identity provider's token with the
    # tickets' audience is refused as `?token=` (401), like any token the service did not mint.
    jwks, ec_key, _ = _idp(tmp_path)
    async with _app(make_settings(tmp_path, jwks_file=str(jwks))) as (ctx, _client):
        tenant = (await provision(ctx, name="acme")).tenant["id"]
        claims = _claims(tenant, aud="causeflow-stream")
        del claims["roles"]
        forged = jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "ec1"})
        try:
            principal = ctx.tokens.principal_from_ticket(forged, time.time())
        except Exception as exc:  # the expected outcome: refused
            assert getattr(exc, "status", None) == 401
        else:
            raise AssertionError(f"an IdP token was accepted as a stream ticket: {principal}")


async def test_external_token_naming_no_tenant_that_exists_writes_nothing(tmp_path: Path):
    # Expected: a token whose tenant claim names no tenant of the service is refused (401),
    # so nothing is written under a tenant id that does not exist.
    jwks, ec_key, _ = _idp(tmp_path)
    async with _app(make_settings(tmp_path, jwks_file=str(jwks))) as (_ctx, client):
        token = jwt.encode(
            _claims("ten_does_not_exist"), ec_key, algorithm="ES256", headers={"kid": "ec1"}
        )
        resp = await client.post(
            "/v1/incidents",
            json={"title": "ghost", "severity": "high"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 401, resp.text


async def _trigger(client: httpx.AsyncClient, key: str) -> str:
    resp = await client.post(
        "/v1/triggers",
        json={"slug": "gh", "provider": "github", "action": "incident_created"},
        headers={"X-API-Key": key},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def test_trigger_event_with_a_huge_integer_is_not_a_500(tmp_path: Path):
    # Expected: an incoming event holding an integer too large for a double (but valid JSON)
    # is accepted (201) or refused as a client mistake (4xx); never a 500.
    async with _app(make_settings(tmp_path)) as (ctx, client):
        key = (await provision(ctx, name="acme")).api_key
        trigger = await _trigger(client, key)
        body = b'{"title": "deploy failed", "n": ' + b"9" * 400 + b"}"
        resp = await client.post(
            f"/v1/triggers/{trigger}/events",
            content=body,
            headers={"X-API-Key": key, "Content-Type": "application/json"},
        )
        assert resp.status_code < 500, resp.text


async def test_trigger_event_with_a_lone_surrogate_is_not_a_500(tmp_path: Path):
    # Expected: an incoming event with an unpaired UTF-16 surrogate escape ("\ud800") is
    # accepted or refused as a client mistake (4xx, like the other routes' 422); never a 500.
    async with _app(make_settings(tmp_path)) as (ctx, client):
        key = (await provision(ctx, name="acme")).api_key
        trigger = await _trigger(client, key)
        body = b'{"title": "deploy failed", "x": "a\\ud800"}'
        resp = await client.post(
            f"/v1/triggers/{trigger}/events",
            content=body,
            headers={"X-API-Key": key, "Content-Type": "application/json"},
        )
        assert resp.status_code < 500, resp.text


async def test_own_tokens_still_work_with_a_custom_tenant_claim(tmp_path: Path):
    # Expected: with CAUSEFLOW_JWT_TENANT_CLAIM set for an identity provider (`org_id`), the
    # service's own tokens (the admin token `tenant create` prints, `causeflow token`) still
    # name their tenant and are accepted (200), not 401 "token names no tenant".
    async with _app(make_settings(tmp_path, jwt_tenant_claim="org_id")) as (ctx, client):
        provisioned = await provision(ctx, name="acme")
        resp = await client.get(
            "/v1/tenant", headers={"Authorization": f"Bearer {provisioned.admin_token}"}
        )
        assert resp.status_code == 200, resp.text


async def test_dashboard_login_with_a_multipart_body_without_boundary_is_4xx(tmp_path: Path):
    # Expected: a malformed form body is a client mistake (4xx), never a 500.
    async with _app(make_settings(tmp_path)) as (_ctx, client):
        resp = await client.post(
            "/ui/login",
            content=b"--x\r\n",
            headers={"Content-Type": "multipart/form-data"},
        )
        assert resp.status_code < 500, resp.text

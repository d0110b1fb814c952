"""Tokens from an external identity provider: RS256 against a configured JWKS, with a
configurable tenant claim; algorithm confusion refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.inproc import make_settings, running_service

pytestmark = pytest.mark.integration


async def test_rs256_tokens_from_a_jwks_file(tmp_path: Path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    public_jwk.update({"kid": "idp-1", "alg": "RS256", "use": "sig"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk]}))
    settings = make_settings(tmp_path, jwks_file=str(jwks), jwt_tenant_claim="org_id")
    async with running_service(settings) as svc:
        tenant = await svc.tenant()
        claims = {
            "iss": "causeflow",
            "aud": "causeflow-api",
            "sub": "u1",
            "org_id": tenant.id,
            "roles": ["member"],
            "exp": int(time.time()) + 300,
        }
        good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "idp-1"})
        resp = await svc.client.get("/v1/events", headers={"Authorization": f"Bearer {good}"})
        assert resp.status_code == 200

        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": "idp-1"})
        unknown_kid = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "nope"})
        # an HS256 token is checked against the service's own secret, never the IdP's keys
        hs = jwt.encode(claims, "k" * 32, algorithm="HS256")
        no_tenant = jwt.encode(
            {**claims, "org_id": None}, key, algorithm="RS256", headers={"kid": "idp-1"}
        )
        for token in (forged, unknown_kid, hs, no_tenant):
            resp = await svc.client.get("/v1/events", headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 401, token

"""Client certificates and delivery auth through the subscription API: write-only, sealed,
checked on input (422 in the contract's shape), invisible to other tenants."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trustme
from sqlalchemy import select

from causeflow.webhook.subscriptions import subscription_cache
from causeflow.webhook.tables import subscriptions
from tests.support.inproc import Service, Tenant
from tests.support.webhook import SUBS, create_sub, error_paths

from .egress_support import client_pem, self_signed_pem

pytestmark = pytest.mark.integration

TOKEN = "bearer-token-value-9f3c"
CLIENT_SECRET = "client-secret-value-71ab"


@pytest.fixture(scope="module")
def pem() -> tuple[str, str]:
    return client_pem(trustme.CA(), "egress-client")


def oauth_body(**extra: Any) -> dict[str, Any]:
    return {
        "type": "oauth2",
        "tokenUrl": "http://127.0.0.1:9/token",
        "clientId": "client-7",
        "clientSecret": CLIENT_SECRET,
        "scope": "hooks",
        **extra,
    }


async def stored_row(service: Service, sub_id: str) -> Any:
    async with service.ctx.db.read() as conn:
        return (await conn.execute(select(subscriptions).where(subscriptions.c.id == sub_id))).one()


async def test_secrets_are_write_only_and_sealed(
    service: Service, tenant: Tenant, pem: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = pem
    caplog.set_level(logging.DEBUG)
    created = await create_sub(
        service,
        tenant,
        tls={"clientCertificate": cert, "clientKey": key},
        auth=oauth_body(),
    )
    assert "O=trustme" in created["tls"]["subject"] and "O=trustme" in created["tls"]["issuer"]
    assert len(created["tls"]["fingerprintSha256"]) == 64
    assert created["tls"]["notAfter"].endswith("Z")
    assert created["auth"] == {
        "type": "oauth2",
        "tokenUrl": "http://127.0.0.1:9/token",
        "clientId": "client-7",
    }
    path = f"{SUBS}/{created['id']}"
    read = await service.client.get(path, headers=tenant.key_headers)
    listed = await service.client.get(SUBS, headers=tenant.key_headers)
    patched = await service.client.patch(
        path, headers=tenant.admin_headers, json={"auth": {"type": "bearer", "token": TOKEN}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["auth"] == {"type": "bearer", "tokenUrl": None, "clientId": None}
    row = await stored_row(service, created["id"])
    secret_bits = ("PRIVATE KEY", key.splitlines()[1], CLIENT_SECRET, TOKEN, cert.splitlines()[1])
    texts = [str(created), read.text, listed.text, patched.text, caplog.text, str(tuple(row))]
    for text in texts:
        for bit in secret_bits:
            assert bit not in text
    # the delivery path opens them
    sub = await subscription_cache(service.ctx).get(created["id"])
    assert sub is not None and sub.client_tls is not None and sub.auth is not None
    assert sub.client_tls.key == key and sub.auth.token == TOKEN


async def test_null_removes_and_other_fields_keep_them(
    service: Service, tenant: Tenant, pem: tuple[str, str]
) -> None:
    cert, key = pem
    created = await create_sub(
        service,
        tenant,
        tls={"clientCertificate": cert, "clientKey": key},
        auth={"type": "bearer", "token": TOKEN},
    )
    path = f"{SUBS}/{created['id']}"
    kept = await service.client.patch(path, headers=tenant.admin_headers, json={"description": "x"})
    assert kept.json()["tls"] == created["tls"] and kept.json()["auth"] == created["auth"]
    cleared = await service.client.patch(
        path, headers=tenant.admin_headers, json={"tls": None, "auth": None}
    )
    assert cleared.json()["tls"] is None and cleared.json()["auth"] is None
    row = await stored_row(service, created["id"])
    assert row.client_tls_enc is None and row.delivery_auth_enc is None


async def test_a_foreign_tenant_can_neither_see_nor_change_them(
    service: Service, tenant: Tenant, other_tenant: Tenant, pem: tuple[str, str]
) -> None:
    cert, key = pem
    created = await create_sub(
        service, tenant, tls={"clientCertificate": cert, "clientKey": key}, auth=oauth_body()
    )
    path = f"{SUBS}/{created['id']}"
    seen = await service.client.get(path, headers=other_tenant.key_headers)
    changed = await service.client.patch(
        path, headers=other_tenant.admin_headers, json={"tls": None, "auth": None}
    )
    listed = await service.client.get(SUBS, headers=other_tenant.key_headers)
    for resp in (seen, changed):
        assert resp.status_code == 404
        assert resp.json()["error"] == "subscription_not_found"
    assert created["id"] not in listed.text
    row = await stored_row(service, created["id"])
    assert row.client_tls_enc is not None and row.delivery_auth_enc is not None


def _mangled(text: str) -> str:
    lines = text.splitlines()
    lines[2] = "!" * len(lines[2])
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("case", "path"),
    [
        ("not_pem", "tls.clientCertificate"),
        ("broken_cert", "tls.clientCertificate"),
        ("broken_key", "tls.clientKey"),
        ("mismatched", "tls.clientKey"),
        ("expired", "tls.clientCertificate"),
        ("encrypted_key", "tls.clientKey"),
        ("missing_key", "tls.clientKey"),
    ],
)
async def test_bad_client_certificates_are_422(
    service: Service, tenant: Tenant, pem: tuple[str, str], case: str, path: str
) -> None:
    from cryptography.hazmat.primitives import serialization

    cert, key = pem
    other_cert, other_key = self_signed_pem()
    tls: dict[str, Any] = {
        "not_pem": {"clientCertificate": "hello", "clientKey": key},
        "broken_cert": {"clientCertificate": _mangled(cert), "clientKey": key},
        "broken_key": {"clientCertificate": cert, "clientKey": _mangled(key)},
        "mismatched": {"clientCertificate": cert, "clientKey": other_key},
        "expired": dict(zip(("clientCertificate", "clientKey"), self_signed_pem(expired=True))),
        "encrypted_key": {
            "clientCertificate": other_cert,
            "clientKey": serialization.load_pem_private_key(other_key.encode(), None)
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"pw"),
            )
            .decode(),
        },
        "missing_key": {"clientCertificate": cert},
    }[case]
    body = {"url": "http://127.0.0.1:9/hook", "events": ["*"], "tls": tls}
    resp = await service.client.post(SUBS, headers=tenant.admin_headers, json=body)
    paths = error_paths(resp)
    assert any(p == path or p.startswith(path) for p in paths), paths
    assert "PRIVATE KEY" not in resp.text


@pytest.mark.parametrize(
    ("auth", "path"),
    [
        ({"type": "basic", "token": "x"}, "auth"),
        ({"token": "x"}, "auth"),
        ({"type": "bearer"}, "auth.bearer.token"),
        ({"type": "bearer", "token": "two words"}, "auth.token"),
        ({"type": "oauth2", "tokenUrl": "http://x/t", "clientId": "c"}, "auth.oauth2"),
        (oauth_body(tokenUrl="http://169.254.169.254/token"), "auth.tokenUrl"),
        (oauth_body(tokenUrl="ftp://example.com/token"), "auth.tokenUrl"),
        (oauth_body(extra="x"), "auth.oauth2.extra"),
    ],
)
async def test_bad_auth_is_422(
    service: Service, tenant: Tenant, auth: dict[str, Any], path: str
) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "events": ["*"], "auth": auth}
    resp = await service.client.post(SUBS, headers=tenant.admin_headers, json=body)
    paths = error_paths(resp)
    assert any(p.startswith(path) for p in paths), paths
    assert CLIENT_SECRET not in resp.text
    created = await service.client.post(
        SUBS, headers=tenant.admin_headers, json={"url": body["url"], "events": ["*"]}
    )
    patched = await service.client.patch(
        f"{SUBS}/{created.json()['id']}", headers=tenant.admin_headers, json={"auth": auth}
    )
    assert any(p.startswith(path) for p in error_paths(patched))

"""Hostile client certificates through the subscription API: a certificate the TLS library
cannot read the public key of is the client's mistake (422 at its field), never a 500."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.inproc import Service, Tenant
from tests.support.webhook import SUBS, create_sub, error_paths

from .egress_support import self_signed_pem

pytestmark = pytest.mark.integration

EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # id-ecPublicKey
P256 = bytes.fromhex("2a8648ce3d030107")  # prime256v1


def _swapped(cert_pem: str, old: bytes, new: bytes) -> str:
    """The certificate with one OID of its public key replaced (its signature no longer
    matters: nothing checks it at create)."""
    der = x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)
    assert der.count(old) == 1
    body = base64.encodebytes(der.replace(old, new)).decode()
    return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (EC_PUBLIC_KEY, bytes.fromhex("2a8648ce3d0209")),  # an unknown key type
        (P256, bytes.fromhex("2a8648ce3d030109")),  # an unknown curve
    ],
    ids=["unknown-key-type", "unknown-curve"],
)
async def test_an_unreadable_certificate_public_key_is_422(
    service: Service, tenant: Tenant, old: bytes, new: bytes
) -> None:
    cert, key = self_signed_pem()
    tls = {"clientCertificate": _swapped(cert, old, new), "clientKey": key}
    body = {"url": "http://127.0.0.1:9/hook", "events": ["*"], "tls": tls}
    created = await service.client.post(SUBS, headers=tenant.admin_headers, json=body)
    assert created.status_code == 422, created.text
    assert "tls.clientCertificate" in error_paths(created)
    assert "PRIVATE KEY" not in created.text
    plain = await create_sub(service, tenant)
    patched = await service.client.patch(
        f"{SUBS}/{plain['id']}", headers=tenant.admin_headers, json={"tls": tls}
    )
    assert patched.status_code == 422, patched.text
    assert "tls.clientCertificate" in error_paths(patched)

"""Client certificates (mTLS) of webhook subscriptions: input checks, the read view, contexts.

A subscription may carry a PEM certificate (the leaf first, then any intermediates) and its
unencrypted PEM private key; the delivery client presents them to the receiver. `check_client_tls`
is the create/patch rule (parses, the key belongs to the certificate, valid now);
`certificate_view` is what reads show (never the key); `ClientContexts` builds one
`ssl.SSLContext` per subscription and keeps it, because aiohttp pools connections per context.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from causeflow.errors import ValidationFailed

MAX_PEM_CHARS = 64 * 1024
# An RSA key is checked (its factors tested for primality) when it is loaded; for a key of
# tens of thousands of bits that takes seconds, so the size is checked first.
MAX_RSA_BITS = 8192
CONTEXTS = 1000  # client contexts kept (all dropped beyond)
_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


@dataclass(frozen=True, slots=True)
class ClientTls:
    """A subscription's client certificate chain and key, PEM."""

    certificate: str
    key: str

    def to_json(self) -> dict[str, str]:
        return {"certificate": self.certificate, "key": self.key}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ClientTls:
        return cls(certificate=str(doc["certificate"]), key=str(doc["key"]))

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the leaf certificate's DER, hex (what reads show)."""
        leaf = x509.load_pem_x509_certificates(self.certificate.encode())[0]
        return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()


def _leaf(pem: str, path: str) -> x509.Certificate:
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise ValidationFailed.at(path, "is not a PEM certificate") from exc
    return certs[0]


def _private_key(pem: str, path: str) -> Any:
    try:
        unchecked = serialization.load_pem_private_key(
            pem.encode(), password=None, unsafe_skip_rsa_key_validation=True
        )
        if isinstance(unchecked, rsa.RSAPrivateKey) and unchecked.key_size > MAX_RSA_BITS:
            raise ValidationFailed.at(path, f"RSA keys are limited to {MAX_RSA_BITS} bits")
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError as exc:  # encrypted keys want a password
        raise ValidationFailed.at(path, "must not be encrypted (no passphrase)") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValidationFailed.at(path, "is not a PEM private key") from exc
    if not isinstance(key, _KEY_TYPES):
        raise ValidationFailed.at(path, "is not an RSA, EC or EdDSA private key")
    return key


def _public_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def check_client_tls(certificate: str, key: str, *, now_ms: int, path: str = "tls") -> ClientTls:
    """The create/patch rule: both parse, the key is the certificate's, it is valid now."""
    if len(certificate) > MAX_PEM_CHARS or len(key) > MAX_PEM_CHARS:
        raise ValidationFailed.at(path, f"PEM values are limited to {MAX_PEM_CHARS} characters")
    leaf = _leaf(certificate, f"{path}.clientCertificate")
    private = _private_key(key, f"{path}.clientKey")
    try:
        leaf_public = _public_der(leaf.public_key())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValidationFailed.at(
            f"{path}.clientCertificate", "has a public key of an unsupported type"
        ) from exc
    if _public_der(private.public_key()) != leaf_public:
        raise ValidationFailed.at(f"{path}.clientKey", "does not belong to the certificate")
    now = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC)
    if leaf.not_valid_after_utc <= now:
        raise ValidationFailed.at(f"{path}.clientCertificate", "has expired")
    if leaf.not_valid_before_utc > now:
        raise ValidationFailed.at(f"{path}.clientCertificate", "is not valid yet")
    tls = ClientTls(certificate=certificate, key=key)
    try:
        load_into(ssl.create_default_context(), tls)
    except (ssl.SSLError, OSError) as exc:
        raise ValidationFailed.at(path, "the certificate and key cannot be used for TLS") from exc
    return tls


def certificate_view(tls: ClientTls) -> dict[str, Any]:
    """What reads show of a client certificate: never the key."""
    leaf = x509.load_pem_x509_certificates(tls.certificate.encode())[0]
    return {
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "notAfter": leaf.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
        "fingerprintSha256": tls.fingerprint,
    }


@contextlib.contextmanager
def _pem_paths(tls: ClientTls) -> Iterator[tuple[str, str]]:
    """Paths `load_cert_chain` can read: memory-only files where the system has them."""
    if hasattr(os, "memfd_create"):
        fds = [os.memfd_create("causeflow-tls", 0) for _ in range(2)]
        try:
            for fd, text in zip(fds, (tls.certificate, tls.key), strict=True):
                os.write(fd, text.encode())
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory() as tmp:  # created 0700
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_text(tls.certificate)
        key.touch(mode=0o600)
        key.write_text(tls.key)
        yield str(cert), str(key)


def load_into(context: ssl.SSLContext, tls: ClientTls) -> ssl.SSLContext:
    with _pem_paths(tls) as (cert, key):
        context.load_cert_chain(cert, key)
    return context


class ClientContexts:
    """One client `SSLContext` per subscription and certificate, built on first use and kept.

    `cafile` is the receivers' CA bundle (`CAUSEFLOW_WEBHOOK_CA_FILE`) or the system's.
    """

    def __init__(self, cafile: str | None = None) -> None:
        self._cafile = cafile or None
        self._contexts: dict[str, tuple[str, ssl.SSLContext]] = {}

    def get(self, subscription_id: str, tls: ClientTls) -> ssl.SSLContext:
        digest = hashlib.sha256(f"{tls.certificate}\0{tls.key}".encode()).hexdigest()
        hit = self._contexts.get(subscription_id)
        if hit is not None and hit[0] == digest:
            return hit[1]
        if len(self._contexts) >= CONTEXTS:
            self._contexts.clear()
        context = load_into(ssl.create_default_context(cafile=self._cafile), tls)
        self._contexts[subscription_id] = (digest, context)
        return context

"""Client certificate input limits: an oversized RSA key is refused by its size before the
expensive consistency check (primality tests of huge factors would hold the API's event loop
for seconds)."""

from __future__ import annotations

import secrets
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from causeflow.errors import ValidationFailed
from causeflow.webhook.clienttls import MAX_RSA_BITS, check_client_tls

from .egress_support import self_signed_pem

pytestmark = pytest.mark.unit

_SMALL_PRIMES = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47)


def _odd(bits: int) -> int:
    """A random odd number of `bits` without small factors (so checks must work for it)."""
    while True:
        value = secrets.randbits(bits) | (1 << (bits - 1)) | 1
        if all(value % p for p in _SMALL_PRIMES):
            return value


def bogus_rsa_key(bits: int) -> str:
    """An RSA private key PEM of `bits` whose factors are not primes."""
    p, q = _odd(bits // 2), _odd(bits // 2)
    d = _odd(bits - 8)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), 1, rsa.RSAPublicNumbers(65537, p * q)
    )
    key = numbers.private_key(unsafe_skip_rsa_key_validation=True)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def test_a_huge_rsa_key_is_refused_by_its_size_at_once() -> None:
    cert, _key = self_signed_pem()
    key = bogus_rsa_key(40_000)
    assert len(key) < 64 * 1024  # within the PEM size limit
    started = time.monotonic()
    with pytest.raises(ValidationFailed) as caught:
        check_client_tls(cert, key, now_ms=int(time.time() * 1000))
    elapsed = time.monotonic() - started
    assert str(MAX_RSA_BITS) in str(caught.value.details), caught.value.details
    assert elapsed < 1.5, elapsed


def test_an_rsa_key_within_the_limit_is_still_checked() -> None:
    cert, _key = self_signed_pem()
    with pytest.raises(ValidationFailed) as caught:
        check_client_tls(cert, bogus_rsa_key(2048), now_ms=int(time.time() * 1000))
    assert "tls.clientKey" in str(caught.value.details)

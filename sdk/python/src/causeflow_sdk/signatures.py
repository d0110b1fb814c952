"""The HMAC math of webhook signatures, shared by the sender and the SDK (pure, stdlib only).

Two schemes: `X-CauseFlow-Signature` (hex HMAC-SHA256 of the raw body keyed by the secret's
UTF-8 bytes) and Standard Webhooks (`v1,` + base64 HMAC-SHA256 of "id.timestamp.body" keyed by
the base64-decoded part of a `whsec_` secret, or by a plain secret's UTF-8 bytes).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    """A fresh signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


@functools.lru_cache(maxsize=4096)
def standard_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of `secret`.

    For `whsec_…` it is the base64-decoded rest (missing padding tolerated, as the reference
    libraries do); for any other secret its UTF-8 bytes (receivers pass those bytes to the
    libraries). Raises ValueError when a `whsec_` secret is not valid base64 or is empty.
    """
    if not secret.startswith(SECRET_PREFIX):
        if not secret:
            raise ValueError("secret must not be empty")
        return secret.encode("utf-8")
    rest = secret[len(SECRET_PREFIX) :]
    padded = rest + "=" * (-len(rest) % 4)
    try:
        key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a secret starting with 'whsec_' must continue in base64") from exc
    if not key:
        raise ValueError("a secret starting with 'whsec_' must not be empty after the prefix")
    return key


@functools.lru_cache(maxsize=4096)
def _keyed(key: bytes) -> hmac.HMAC:
    """HMAC-SHA256 set up with `key`, to be copied for each message."""
    return hmac.new(key, digestmod=hashlib.sha256)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of `message`, from a copy of the keyed state (the key is set up once).

    Not `hmac.digest`: that one releases the GIL around every call, however small the
    message, and then waits out another thread's switch interval (up to 5 ms) whenever one
    wants the lock; hashing a message under 2 KiB this way keeps it.
    """
    mac = _keyed(key).copy()
    mac.update(message)
    return mac.digest()


def causeflow_signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(key = secret UTF-8, message = body)>`."""
    return "sha256=" + hmac_sha256(secret.encode("utf-8"), body).hex()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256(standard_key(secret), "{id}.{timestamp}.{body}")>`."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac_sha256(standard_key(secret), signed)
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify_causeflow(secret: str, body: bytes, header: str) -> bool:
    """Constant-time check of an `X-CauseFlow-Signature` value."""
    expected = causeflow_signature(secret, body).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8"))


def verify_standard(
    secrets: Sequence[str],
    msg_id: str,
    timestamp: int,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """True when any `v1,` entry of `header` matches any of `secrets` (constant-time).

    With `now`, a timestamp further than `tolerance` seconds from it is refused too, as the
    Standard Webhooks libraries do against replays.
    """
    if now is not None and abs(now - timestamp) > tolerance:
        return False
    expected = [standard_signature(s, msg_id, timestamp, body).encode("ascii") for s in secrets]
    matched = False
    for entry in header.split():
        given = entry.encode("utf-8")
        if not given.startswith(b"v1,"):
            continue
        for candidate in expected:
            # No early exit: every pair is compared so timing says nothing about which matched.
            matched |= hmac.compare_digest(candidate, given)
    return matched

"""Signatures and headers of one webhook delivery attempt (pure, no I/O).

Two schemes are sent side by side: `X-CauseFlow-Signature` (hex HMAC of the raw body keyed by
the secret's UTF-8 bytes, what the public roadmap verifier computes) and Standard Webhooks
(`webhook-id` / `webhook-timestamp` / `webhook-signature`, base64 HMAC of "id.timestamp.body").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _secrets
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"
MIN_SECRET_LENGTH = 16

# Names the service sets itself, plus the ones that frame the HTTP message: a subscription
# that could set them would either forge our signature headers or corrupt the request.
RESERVED_HEADERS: frozenset[str] = frozenset(
    {
        "content-type",
        "user-agent",
        "x-causeflow-event",
        "x-causeflow-delivery",
        "x-causeflow-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-connection",
    }
)

# RFC 9110 token characters for a field name; values may not carry CR, LF or NUL (header
# injection) — anything else is passed through as the subscription gave it.
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE_RE = re.compile(r"[\r\n\x00]")


def generate_secret() -> str:
    """A fresh signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


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


def check_secret(secret: str) -> None:
    """Raise ValueError unless `secret` can sign deliveries (create/rotate-time check)."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"secret must be at least {MIN_SECRET_LENGTH} characters")
    standard_key(secret)


def causeflow_signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(key = secret UTF-8, message = body)>`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256(standard_key(secret), "{id}.{timestamp}.{body}")>`."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def is_header_allowed(name: str, value: str) -> bool:
    """True when a subscription may add this header to its deliveries."""
    return (
        bool(_TOKEN_RE.match(name))
        and name.lower() not in RESERVED_HEADERS
        and not _BAD_VALUE_RE.search(value)
    )


def delivery_headers(
    *,
    event_type: str,
    msg_id: str,
    timestamp: int,
    body: bytes,
    secrets: Sequence[str],
    version: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every header of one attempt.

    `secrets[0]` is the current secret and the only one behind `X-CauseFlow-Signature` (the
    roadmap verifier compares a single value); `webhook-signature` carries one `v1,` entry per
    secret so receivers on either side of a rotation verify. The subscription's `extra`
    headers go in first and are dropped when they name a reserved header (any case) or are
    malformed; the create/patch API refuses those with a 422 before they get here.
    """
    if not secrets:
        raise ValueError("at least one secret is required")
    headers: dict[str, str] = {}
    for name, value in (extra or {}).items():
        if is_header_allowed(name, value):
            headers[name] = value
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": f"CauseFlow-Webhooks/{version}",
            "X-CauseFlow-Event": event_type,
            "X-CauseFlow-Delivery": msg_id,
            "X-CauseFlow-Signature": causeflow_signature(secrets[0], body),
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(timestamp)),
            "webhook-signature": " ".join(
                standard_signature(s, msg_id, timestamp, body) for s in secrets
            ),
        }
    )
    return headers


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

"""Signatures and headers of one webhook delivery attempt (pure, no I/O).

Two schemes are sent side by side: `X-CauseFlow-Signature` (hex HMAC of the raw body keyed by
the secret's UTF-8 bytes: the hex scheme of docs/reference.md §5.5) and Standard Webhooks
(`webhook-id` / `webhook-timestamp` / `webhook-signature`, base64 HMAC of "id.timestamp.body").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# The HMAC primitives and the secret format live with the client library so sender and
# verifier share one implementation; they are re-exported here for the server's callers.
from causeflow_sdk.signatures import (
    SECRET_PREFIX,
    causeflow_signature,
    generate_secret,
    standard_key,
    standard_signature,
    verify_causeflow,
    verify_standard,
)

__all__ = [
    "MIN_SECRET_LENGTH",
    "RESERVED_HEADERS",
    "SECRET_PREFIX",
    "causeflow_signature",
    "check_secret",
    "delivery_headers",
    "generate_secret",
    "is_header_allowed",
    "standard_key",
    "standard_signature",
    "verify_causeflow",
    "verify_standard",
]

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
        "x-causeflow-sequence",
        "x-causeflow-subscription",
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
        # spoken to the operator's proxy on plain-http deliveries: the service's alone
        "proxy-authorization",
    }
)

# RFC 9110 token characters for a field name; values may not carry CR, LF or NUL (header
# injection) — anything else is passed through as the subscription gave it.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # fullmatch: `$` lets a final \n by
_BAD_VALUE_RE = re.compile(r"[\r\n\x00]")


def check_secret(secret: str) -> None:
    """Raise ValueError unless `secret` can sign deliveries (create/rotate-time check)."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"secret must be at least {MIN_SECRET_LENGTH} characters")
    standard_key(secret)


def is_header_allowed(name: str, value: str) -> bool:
    """True when a subscription may add this header to its deliveries."""
    return (
        bool(_TOKEN_RE.fullmatch(name))
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
    subscription_id: str | None = None,
    sequence: int | None = None,
) -> dict[str, str]:
    """Every header of one attempt.

    `secrets[0]` is the current secret and the only one behind `X-CauseFlow-Signature` (the
    verifier of docs/reference.md §5.5 compares one); `webhook-signature` has one `v1,` entry per
    secret so receivers on either side of a rotation verify. The subscription's `extra`
    headers go in first and are dropped when they name a reserved header (any case) or are
    malformed; the create/patch API refuses those with a 422 before they get here. A delivery
    with a `sequence` (the k-th match of its subscription) names both, so a receiver can tell
    a gap (`X-CauseFlow-Subscription`, `X-CauseFlow-Sequence`).
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
    if sequence is not None and subscription_id is not None:
        headers["X-CauseFlow-Subscription"] = subscription_id
        headers["X-CauseFlow-Sequence"] = str(sequence)
    return headers

"""HMAC signature checks for the inbound headers senders can attach.

Each check returns None when its header is absent (or no secret is configured to check it with),
True when it matches, and raises InvalidSignature when it is present and wrong. Every comparison
is constant-time (`hmac.compare_digest` over the hex digests).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

from causeflow.ingest.providers.base import InvalidSignature
from causeflow.ingest.providers.fields import header

GENERIC_HEADER = "x-webhook-signature"
SENTRY_HEADER = "sentry-hook-signature"
PAGERDUTY_HEADER = "x-pagerduty-signature"
GRAFANA_HEADER = "x-grafana-alerting-signature"
# Grafana has no default timestamp header name (it is whatever the contact point says); these are
# the names its provisioning examples use, the first one being the one our docs recommend.
GRAFANA_TIMESTAMP_HEADERS = (
    "x-grafana-alerting-signature-timestamp",
    "x-grafana-alerting-timestamp",
)


def hmac_hex(secret: str, message: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of the message, keyed with the secret's UTF-8 bytes."""
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _matches(expected: str, candidates: Iterable[str]) -> bool:
    wanted = expected.encode("ascii")
    found = False
    # Compare against every candidate (no early exit) so timing says nothing about which matched.
    for candidate in candidates:
        given = candidate.strip().lower().encode("utf-8", "replace")
        found = hmac.compare_digest(wanted, given) or found
    return found


def check_generic(headers: Mapping[str, str], body: bytes, secret: str | None) -> bool | None:
    """`X-Webhook-Signature: sha256=<hex>` (bare hex accepted; comma-separated list allowed)."""
    value = header(headers, GENERIC_HEADER)
    if value is None or not secret:
        return None
    candidates = []
    for part in value.split(","):
        part = part.strip()
        if part[:7].lower() == "sha256=":
            part = part[7:]
        candidates.append(part)
    if not _matches(hmac_hex(secret, body), candidates):
        raise InvalidSignature("X-Webhook-Signature does not match the body")
    return True


def check_sentry(headers: Mapping[str, str], body: bytes, secret: str | None) -> bool | None:
    """`Sentry-Hook-Signature`: hex HMAC-SHA256 of the body with the integration client secret."""
    value = header(headers, SENTRY_HEADER)
    if value is None or not secret:
        return None
    if not _matches(hmac_hex(secret, body), [value]):
        raise InvalidSignature("Sentry-Hook-Signature does not match the body")
    return True


def check_pagerduty(headers: Mapping[str, str], body: bytes, secret: str | None) -> bool | None:
    """`X-PagerDuty-Signature: v1=<hex>,v1=<hex>`: any v1 entry may match (secret rotation)."""
    value = header(headers, PAGERDUTY_HEADER)
    if value is None or not secret:
        return None
    candidates = [
        part.strip()[3:] for part in value.split(",") if part.strip()[:3].lower() == "v1="
    ]
    if not candidates or not _matches(hmac_hex(secret, body), candidates):
        raise InvalidSignature("X-PagerDuty-Signature has no matching v1 signature")
    return True


def check_grafana(headers: Mapping[str, str], body: bytes, secret: str | None) -> bool | None:
    """`X-Grafana-Alerting-Signature`: hex HMAC-SHA256 of `timestamp:body`, or of the body alone.

    Grafana signs `"{timestamp}:{body}"` when the contact point names a timestamp header and the
    body alone otherwise; both forms are accepted (dropping the timestamp header gains a forger
    nothing, as the body-only form still needs the secret).
    """
    value = header(headers, GRAFANA_HEADER)
    if value is None or not secret:
        return None
    expected = [hmac_hex(secret, body)]
    for name in GRAFANA_TIMESTAMP_HEADERS:
        stamp = header(headers, name)
        if stamp is not None:
            expected.append(hmac_hex(secret, stamp.encode("utf-8", "replace") + b":" + body))
    found = False
    for digest in expected:
        found = _matches(digest, [value]) or found
    if not found:
        raise InvalidSignature("X-Grafana-Alerting-Signature does not match the body")
    return True


def any_verified(*results: bool | None) -> bool:
    """True when at least one check ran and passed (a failing check has already raised)."""
    return any(result is True for result in results)

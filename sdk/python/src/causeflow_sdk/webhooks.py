"""Verifying a webhook delivery on the receiving side: `verify(body, headers, secrets)`.

A delivery carries two signatures of the same raw body. When the Standard Webhooks headers
(`webhook-id`, `webhook-timestamp`, `webhook-signature`) are present they decide, timestamp
tolerance included; otherwise `X-CauseFlow-Signature` is checked (it signs the body only, so it
cannot tell a replay from a delivery). Several secrets may be given, for a rotation window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from causeflow_sdk.errors import WebhookVerificationError
from causeflow_sdk.models import Envelope
from causeflow_sdk.signatures import (
    SECRET_PREFIX,
    standard_key,
    verify_causeflow,
    verify_standard,
)

__all__ = ["SECRET_PREFIX", "WebhookVerificationError", "verify", "verify_signature"]

DEFAULT_TOLERANCE_SECONDS = 300


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    # Header names are case-insensitive; frameworks hand them over in every spelling.
    return {str(name).lower(): str(value) for name, value in headers.items()}


def _secret_list(secrets: str | Sequence[str]) -> list[str]:
    items = [secrets] if isinstance(secrets, str) else list(secrets)
    if not items:
        raise ValueError("give at least one signing secret")
    for secret in items:
        standard_key(secret)  # a malformed `whsec_` secret is a configuration error
    return items


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check the signature only; return the scheme that matched ("standard" or "causeflow").

    Raises WebhookVerificationError when it does not verify, ValueError for unusable secrets.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("pass the raw request body as bytes, before any JSON parsing")
    # NaN compares false with everything: a NaN tolerance or clock would accept any timestamp
    if math.isnan(tolerance) or tolerance < 0:
        raise ValueError("tolerance must be a number of seconds, 0 or more (inf: no check)")
    if now is not None and not math.isfinite(now):
        raise ValueError("now must be a finite time in seconds")
    raw = bytes(body)
    keys = _secret_list(secrets)
    found = _lowered(headers)
    signature = found.get("webhook-signature")
    if signature is not None:
        msg_id = found.get("webhook-id")
        stamp = found.get("webhook-timestamp")
        if not msg_id or not stamp:
            missing = "webhook-id" if not msg_id else "webhook-timestamp"
            raise WebhookVerificationError(f"missing {missing} header")
        try:
            timestamp = int(stamp.strip())
        except ValueError:
            raise WebhookVerificationError("webhook-timestamp is not an integer") from None
        current = time.time() if now is None else now
        if abs(current - timestamp) > tolerance:
            raise WebhookVerificationError(
                f"webhook-timestamp is {int(current - timestamp)} s away from now "
                f"(tolerance {int(tolerance)} s): stale or replayed"
            )
        if not verify_standard(keys, msg_id, timestamp, raw, signature):
            raise WebhookVerificationError("webhook-signature does not match any secret")
        return "standard"
    legacy = found.get("x-causeflow-signature")
    if legacy is not None:
        if not any(verify_causeflow(secret, raw, legacy) for secret in keys):
            raise WebhookVerificationError("X-CauseFlow-Signature does not match any secret")
        return "causeflow"
    raise WebhookVerificationError(
        "missing signature headers (webhook-signature or X-CauseFlow-Signature)"
    )


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> Envelope:
    """Verify a delivery and return its event.

    `body` is the raw request body (bytes, untouched), `headers` the request headers (any
    mapping, any case), `secrets` the subscription's secret or several during a rotation.
    `tolerance` bounds the distance between `webhook-timestamp` and `now` (default: the clock)
    in seconds. Raises WebhookVerificationError, ValueError for an unusable secret.
    """
    verify_signature(body, headers, secrets, tolerance=tolerance, now=now)
    try:
        return Envelope.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise WebhookVerificationError(
            f"signature is valid but the body is not a CauseFlow event: {exc.error_count()} "
            "problem(s)"
        ) from None

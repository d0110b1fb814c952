"""The provider interface: what every inbound parser returns, raises and is asked.

Providers are pure: headers and raw body in, `ParsedPayload` out; no I/O, no clock, no database.

Exceptions::

    Exception
    ├── InvalidPayload    the body is not this provider's payload   -> 400 invalid_payload
    └── InvalidSignature  a signature is present but does not match -> 401 invalid_signature
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

# raised by every provider, and named from here by their callers
from causeflow.ingest.providers.errors import InvalidPayload as InvalidPayload
from causeflow.ingest.providers.errors import InvalidSignature as InvalidSignature

if TYPE_CHECKING:
    from causeflow.ingest.sns import SnsAction

AlertStatus = Literal["firing", "resolved", "acknowledged"]

# The severity scale (docs/reference.md §3.2), most severe first.
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "info")


@dataclass(frozen=True)
class NormalizedAlert:
    """One alert of a delivery, in the provider-neutral shape the ingest service stores."""

    fingerprint: str
    status: AlertStatus
    title: str
    description: str | None
    severity: str  # one of SEVERITIES
    service: str | None
    environment: str | None
    labels: dict[str, str]
    url: str | None
    raw: dict[
        str, Any
    ]  # the alert's own slice of the payload (secrets such as routing keys removed)
    occurred_at: str | None = None  # RFC 3339 UTC with milliseconds, when the sender says


@dataclass(frozen=True)
class ParsedPayload:
    """Everything one delivery says: its alerts (possibly none) and how to recognise a resend."""

    alerts: list[NormalizedAlert]
    # The sender's id for this HTTP delivery, the same on every retry (X-Webhook-Id, SNS MessageId,
    # Sentry Request-ID, ...); the service ignores a second delivery with the same id for 24 h.
    delivery_id: str | None
    # CloudWatch through SNS: what the service must still do before trusting the delivery.
    sns: SnsAction | None = None


@dataclass
class ProviderSecrets:
    """The tenant's signing secrets for one request (decrypted by the caller)."""

    webhook_secret: str | None = None  # the ingest key's secret, for X-Webhook-Signature
    sentry: str | None = None  # Sentry integration client secret
    pagerduty: str | None = None  # PagerDuty V3 webhook subscription secret
    grafana: str | None = None  # Grafana contact point HMAC secret


class Provider(Protocol):
    """One sender's parser and signature checks.

    `headers` is a mapping with lower-case keys (the ASGI form). `verify` returns True when a
    signature was present and valid, False when none was present (or none could be checked for
    lack of a configured secret), and raises InvalidSignature when one is present but wrong.
    `X-Webhook-Signature` is checked for every provider when present.
    """

    name: str
    signs: bool  # whether this sender can sign at all (for the tenant's requireSignature)
    signature_headers: tuple[str, ...]

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: ProviderSecrets) -> bool:
        """Check every signature header present on the request."""
        ...

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedPayload:
        """Read the body; raise InvalidPayload with a clear reason when it cannot."""
        ...

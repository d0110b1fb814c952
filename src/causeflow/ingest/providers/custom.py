"""The generic `custom` format, for scripts and tools with no native integration.

A body is one alert object or `{"alerts": [...]}`. An alert is keyed by `externalId`, else by a
stable hash of its title and service, so a script that only knows its title can fire and resolve.
Values are strict (unknown status or severity is refused) because the sender controls them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from causeflow.ingest.fingerprint import clamp_fingerprint, stable_hash
from causeflow.ingest.providers.base import (
    SEVERITIES,
    AlertStatus,
    InvalidPayload,
    NormalizedAlert,
    ParsedPayload,
    ProviderSecrets,
)
from causeflow.ingest.providers.fields import (
    header,
    load_object,
    lookup,
    opt_str,
    str_map,
    title_text,
    to_rfc3339,
)
from causeflow.ingest.providers.signatures import GENERIC_HEADER, any_verified, check_generic

STATUS_MAP: dict[str, AlertStatus] = {
    "firing": "firing",
    "triggered": "firing",
    "open": "firing",
    "resolved": "resolved",
    "ok": "resolved",
    "acknowledged": "acknowledged",
}
SEVERITY_MAP: dict[str, str] = {
    **{name: name for name in SEVERITIES},
    "warning": "medium",
    "error": "high",
}
DEFAULT_SEVERITY = "medium"
MAX_ALERTS = 500


def _alert(item: object, where: str) -> NormalizedAlert:
    if not isinstance(item, dict):
        raise InvalidPayload(f"{where.rstrip('.') or 'body'} must be an object")
    title = opt_str(item, "title")
    if title is None:
        raise InvalidPayload(f"{where}title is required")
    raw_status = opt_str(item, "status") or "firing"
    status = lookup(STATUS_MAP, raw_status)
    if status is None:
        raise InvalidPayload(f"{where}status must be firing, resolved or acknowledged")
    raw_severity = opt_str(item, "severity")
    severity = lookup(SEVERITY_MAP, raw_severity) if raw_severity else DEFAULT_SEVERITY
    if severity is None:
        raise InvalidPayload(f"{where}severity must be one of {', '.join(SEVERITIES)}")
    if "labels" in item and not isinstance(item["labels"], dict):
        raise InvalidPayload(f"{where}labels must be an object of strings")
    service = opt_str(item, "service")
    fingerprint = opt_str(item, "externalId") or stable_hash(" ".join(title.split()), service or "")
    return NormalizedAlert(
        fingerprint=clamp_fingerprint(fingerprint),
        status=status,
        title=title_text(title, "Alert"),
        description=opt_str(item, "description"),
        severity=severity,
        service=service,
        environment=opt_str(item, "environment"),
        labels=str_map(item.get("labels")),
        url=opt_str(item, "url"),
        raw=item,
        occurred_at=to_rfc3339(item.get("occurredAt")),
    )


def _alerts(doc: dict[str, Any]) -> list[NormalizedAlert]:
    if "alerts" not in doc:
        return [_alert(doc, "")]
    items = doc["alerts"]
    if not isinstance(items, list) or not items:
        raise InvalidPayload("alerts must be a non-empty array")
    if len(items) > MAX_ALERTS:
        raise InvalidPayload(f"at most {MAX_ALERTS} alerts per request")
    return [_alert(item, f"alerts[{i}].") for i, item in enumerate(items)]


class CustomProvider:
    """Our own documented format; senders sign it with X-Webhook-Signature."""

    name = "custom"
    signs = True
    signature_headers: tuple[str, ...] = (GENERIC_HEADER,)

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: ProviderSecrets) -> bool:
        return any_verified(check_generic(headers, body, secrets.webhook_secret))

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedPayload:
        doc = load_object(body)
        return ParsedPayload(alerts=_alerts(doc), delivery_id=header(headers, "x-webhook-id"))

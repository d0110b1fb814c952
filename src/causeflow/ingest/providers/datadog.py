"""Datadog webhooks: the JSON template published in docs/providers.md, filled by Datadog.

Datadog's webhook body is whatever template the user pastes, so this parser reads the keys of
our published template. The alert is keyed by `alert_cycle_key` (one trigger-to-recovery cycle),
else by `alert_id` plus the normalized `alert_scope` (one monitor group).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from causeflow.ingest.fingerprint import clamp_fingerprint, scope_key
from causeflow.ingest.providers.base import (
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
    title_text,
    to_rfc3339,
)
from causeflow.ingest.providers.signatures import GENERIC_HEADER, any_verified, check_generic

# $ALERT_TRANSITION values; anything unknown but present is treated as firing.
TRANSITION_MAP: dict[str, AlertStatus] = {
    "recovered": "resolved",
    "triggered": "firing",
    "re-triggered": "firing",
    "warn": "firing",
    "re-warn": "firing",
    "no data": "firing",
    "re-no data": "firing",
    "renotify": "firing",
}
# $ALERT_TYPE values: error, warning, success, info.
ALERT_TYPE_STATUS: dict[str, AlertStatus] = {
    "success": "resolved",
    "error": "firing",
    "warning": "firing",
    "info": "firing",
}
# $ALERT_PRIORITY (P1..P5) wins over $ALERT_TYPE.
PRIORITY_MAP: dict[str, str] = {
    "p1": "critical",
    "p2": "high",
    "p3": "medium",
    "p4": "low",
    "p5": "info",
}
ALERT_TYPE_SEVERITY: dict[str, str] = {
    "error": "high",
    "warning": "medium",
    "info": "info",
    "success": "info",
}
DEFAULT_SEVERITY = "high"

# "[Triggered on {host:x}] Host is down", "[P1] [Recovered] ...": the notification state is in
# `status`, not in the incident title.
_TITLE_PREFIX = re.compile(
    r"^(?:\[(?:P[1-5]|(?:Re-)?(?:Triggered|Recovered|Warn|No Data)|Renotify)[^\]]*\]\s*)+",
    re.IGNORECASE,
)


def _value(doc: Mapping[str, Any], key: str) -> str | None:
    """A template field, treating a variable Datadog left unexpanded (`$ALERT_ID`) as absent."""
    text = opt_str(doc, key)
    if text is None or (text.startswith("$") and text[1:].replace("_", "").isalnum()):
        return None
    return text


def _tags(*sources: str | None) -> dict[str, str]:
    """`key:value` tags (from $TAGS and $ALERT_SCOPE) as labels; bare tags map to ''."""
    labels: dict[str, str] = {}
    for source in sources:
        for tag in (source or "").split(","):
            tag = tag.strip()
            if not tag:
                continue
            key, _, value = tag.partition(":")
            labels.setdefault(key.strip(), value.strip())
    return labels


def _status(doc: Mapping[str, Any]) -> AlertStatus:
    transition = _value(doc, "alert_transition")
    alert_type = _value(doc, "alert_type")
    if transition is None and alert_type is None:
        raise InvalidPayload("alert_transition or alert_type is required (see the template)")
    if lookup(TRANSITION_MAP, transition) == "resolved" or lookup(
        ALERT_TYPE_STATUS, alert_type
    ) == ("resolved"):
        return "resolved"
    return "firing"


def _alert(doc: dict[str, Any]) -> NormalizedAlert:
    cycle_key = _value(doc, "alert_cycle_key")
    alert_id = _value(doc, "alert_id")
    scope = scope_key(_value(doc, "alert_scope") or "")
    if cycle_key is not None:
        fingerprint = cycle_key
    elif alert_id is not None:
        fingerprint = f"{alert_id}:{scope}" if scope else alert_id
    else:
        raise InvalidPayload("alert_cycle_key or alert_id is required (see the template)")
    labels = _tags(_value(doc, "tags"), scope)
    raw_title = _value(doc, "alert_title") or _value(doc, "event_title") or _value(doc, "title")
    title = _TITLE_PREFIX.sub("", raw_title or "").strip()
    severity = lookup(PRIORITY_MAP, _value(doc, "alert_priority")) or lookup(
        ALERT_TYPE_SEVERITY, _value(doc, "alert_type")
    )
    return NormalizedAlert(
        fingerprint=clamp_fingerprint(fingerprint),
        status=_status(doc),
        title=title_text(title, f"Datadog monitor {alert_id or cycle_key}"),
        description=_value(doc, "body") or _value(doc, "alert_status"),
        severity=severity or DEFAULT_SEVERITY,
        service=labels.get("service") or None,
        environment=labels.get("env") or labels.get("environment") or None,
        labels=labels,
        url=_value(doc, "link"),
        raw=doc,
        occurred_at=to_rfc3339(_value(doc, "date")),
    )


class DatadogProvider:
    """Datadog webhook integration with the published template."""

    name = "datadog"
    signs = False
    signature_headers: tuple[str, ...] = (GENERIC_HEADER,)

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: ProviderSecrets) -> bool:
        return any_verified(check_generic(headers, body, secrets.webhook_secret))

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedPayload:
        doc = load_object(body)
        # $ID is the notification event's id: the same on Datadog's retries of one delivery.
        delivery_id = header(headers, "x-webhook-id") or _value(doc, "id")
        return ParsedPayload(alerts=[_alert(doc)], delivery_id=delivery_id)

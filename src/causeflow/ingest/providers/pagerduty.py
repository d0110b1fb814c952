"""PagerDuty: Events API v2 bodies (tools pointed here instead of at PagerDuty) and V3 webhooks.

Events v2 is keyed by `dedup_key` (`event_action` trigger / acknowledge / resolve); V3 webhook
subscriptions (`incident.triggered` / `acknowledged` / `resolved`) by the incident `event.data.id`.
An acknowledgement is status `acknowledged`: it attaches to the open incident. V3 deliveries are
signed with `X-PagerDuty-Signature` and identified by `X-Webhook-Id`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from causeflow.ingest.fingerprint import clamp_fingerprint, stable_hash
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
    opt_list,
    opt_obj,
    opt_str,
    req_obj,
    req_str,
    str_map,
    title_text,
    to_rfc3339,
)
from causeflow.ingest.providers.signatures import (
    GENERIC_HEADER,
    PAGERDUTY_HEADER,
    any_verified,
    check_generic,
    check_pagerduty,
)

EVENT_ACTION_MAP: dict[str, AlertStatus] = {
    "trigger": "firing",
    "acknowledge": "acknowledged",
    "resolve": "resolved",
}
# Events v2 `payload.severity`.
SEVERITY_MAP: dict[str, str] = {
    "critical": "critical",
    "error": "high",
    "warning": "medium",
    "info": "info",
}
# V3 event types that move an incident; the rest (notes, responders, priority...) carry no state.
V3_EVENT_MAP: dict[str, AlertStatus] = {
    "incident.triggered": "firing",
    "incident.reopened": "firing",
    "incident.unacknowledged": "firing",
    "incident.acknowledged": "acknowledged",
    "incident.resolved": "resolved",
}
# V3 incident `priority.summary`, else `urgency`.
PRIORITY_MAP: dict[str, str] = {
    "p1": "critical",
    "p2": "high",
    "p3": "medium",
    "p4": "low",
    "p5": "info",
}
URGENCY_MAP: dict[str, str] = {"high": "high", "low": "low"}
DEFAULT_SEVERITY = "high"


def _events_v2(doc: dict[str, Any]) -> NormalizedAlert:
    action = opt_str(doc, "event_action")
    status = lookup(EVENT_ACTION_MAP, action)
    if status is None:
        raise InvalidPayload(f"event_action must be trigger, acknowledge or resolve: {action!r}")
    payload = opt_obj(doc, "payload") or {}
    summary = opt_str(payload, "summary")
    source = opt_str(payload, "source")
    dedup_key = opt_str(doc, "dedup_key")
    if dedup_key is None:
        if status != "firing":
            raise InvalidPayload(f"dedup_key is required for event_action {action}")
        if summary is None:
            raise InvalidPayload("payload.summary is required for a trigger")
        # PagerDuty would invent a random key; ours must be stable so resends de-duplicate.
        dedup_key = "auto:" + stable_hash(summary, source or "")
    details = str_map(payload.get("custom_details"))
    labels = {
        key: value
        for key, value in {
            "source": source,
            "component": opt_str(payload, "component"),
            "group": opt_str(payload, "group"),
            "class": opt_str(payload, "class"),
        }.items()
        if value
    }
    links = [link for link in opt_list(doc, "links") if isinstance(link, dict)]
    url = opt_str(doc, "client_url") or (opt_str(links[0], "href") if links else None)
    # The routing key is PagerDuty's integration secret: never store it.
    raw = {**doc, "routing_key": "[redacted]"} if "routing_key" in doc else doc
    return NormalizedAlert(
        fingerprint=clamp_fingerprint(dedup_key),
        status=status,
        title=title_text(summary, f"PagerDuty event {dedup_key}"),
        description=details.get("description"),
        severity=lookup(SEVERITY_MAP, opt_str(payload, "severity")) or DEFAULT_SEVERITY,
        service=details.get("service"),
        environment=details.get("environment") or details.get("env"),
        labels=labels,
        url=url,
        raw=raw,
        occurred_at=to_rfc3339(payload.get("timestamp")),
    )


def _v3_webhook(event: dict[str, Any]) -> list[NormalizedAlert]:
    event_type = opt_str(event, "event_type")
    if event_type is None:
        raise InvalidPayload("event.event_type is required")
    status = lookup(V3_EVENT_MAP, event_type)
    if status is None:
        return []
    incident = req_obj(event, "data", "event.")
    incident_id = req_str(incident, "id", "event.data.")
    priority = opt_str(opt_obj(incident, "priority") or {}, "summary")
    severity = lookup(PRIORITY_MAP, priority) or lookup(URGENCY_MAP, opt_str(incident, "urgency"))
    service = opt_obj(incident, "service") or {}
    labels = {
        key: value
        for key, value in {
            "incident_key": opt_str(incident, "incident_key"),
            "number": opt_str(incident, "number"),
            "urgency": opt_str(incident, "urgency"),
            "priority": priority,
            "service_id": opt_str(service, "id"),
        }.items()
        if value
    }
    return [
        NormalizedAlert(
            fingerprint=clamp_fingerprint(incident_id),
            status=status,
            title=title_text(opt_str(incident, "title"), f"PagerDuty incident {incident_id}"),
            description=None,
            severity=severity or DEFAULT_SEVERITY,
            service=opt_str(service, "summary"),
            environment=None,
            labels=labels,
            url=opt_str(incident, "html_url"),
            raw=event,
            occurred_at=to_rfc3339(event.get("occurred_at")),
        )
    ]


class PagerDutyProvider:
    """PagerDuty Events API v2 senders and V3 webhook subscriptions."""

    name = "pagerduty"
    signs = True
    signature_headers: tuple[str, ...] = (PAGERDUTY_HEADER, GENERIC_HEADER)

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: ProviderSecrets) -> bool:
        return any_verified(
            check_generic(headers, body, secrets.webhook_secret),
            check_pagerduty(headers, body, secrets.pagerduty),
        )

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedPayload:
        doc = load_object(body)
        delivery_id = header(headers, "x-webhook-id")
        if isinstance(doc.get("event"), dict):
            event = doc["event"]
            return ParsedPayload(
                alerts=_v3_webhook(event), delivery_id=delivery_id or opt_str(event, "id")
            )
        if "event_action" in doc:
            return ParsedPayload(alerts=[_events_v2(doc)], delivery_id=delivery_id)
        if "messages" in doc:
            raise InvalidPayload("PagerDuty v1/v2 webhooks are not supported: use V3 webhooks")
        raise InvalidPayload(
            "expected an Events API v2 body (event_action) or a V3 webhook (event)"
        )

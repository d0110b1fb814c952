"""Grafana webhook contact points: unified alerting (`alerts[]`) and legacy dashboard alerts.

Unified alerting is Alertmanager-shaped (each `alerts[].fingerprint` is an alert); the legacy
notifier sends one rule per delivery, keyed by `ruleId`, with `state` alerting / ok / no_data.
Grafana signs with `X-Grafana-Alerting-Signature` when the contact point has an HMAC secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from causeflow.ingest.fingerprint import clamp_fingerprint
from causeflow.ingest.providers.alertmanager import (
    DEFAULT_SEVERITY,
    ENVIRONMENT_LABELS,
    SERVICE_LABELS,
    SEVERITY_MAP,
    parse_group,
)
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
    str_map,
    title_text,
)
from causeflow.ingest.providers.signatures import (
    GENERIC_HEADER,
    GRAFANA_HEADER,
    any_verified,
    check_generic,
    check_grafana,
)

# Legacy `state` values; paused and pending notify nothing actionable and are ignored.
LEGACY_STATE_MAP: dict[str, AlertStatus | None] = {
    "alerting": "firing",
    "no_data": "firing",
    "ok": "resolved",
    "paused": None,
    "pending": None,
}


def _parse_legacy(doc: dict[str, Any]) -> list[NormalizedAlert]:
    raw_state = opt_str(doc, "state")
    if raw_state is None or raw_state.lower() not in LEGACY_STATE_MAP:
        raise InvalidPayload(
            f"state must be one of {', '.join(LEGACY_STATE_MAP)}, not {raw_state!r}"
        )
    status = LEGACY_STATE_MAP[raw_state.lower()]
    if status is None:
        return []
    rule_id = opt_str(doc, "ruleId")
    if rule_id is None:
        raise InvalidPayload("ruleId is required for a legacy Grafana alert")
    tags = str_map(doc.get("tags"))
    service = next((tags[n] for n in SERVICE_LABELS if tags.get(n)), None)
    environment = next((tags[n] for n in ENVIRONMENT_LABELS if tags.get(n)), None)
    return [
        NormalizedAlert(
            fingerprint=clamp_fingerprint(rule_id),
            status=status,
            title=title_text(opt_str(doc, "ruleName") or opt_str(doc, "title"), "Grafana alert"),
            description=opt_str(doc, "message"),
            severity=lookup(SEVERITY_MAP, tags.get("severity")) or DEFAULT_SEVERITY,
            service=service,
            environment=environment,
            labels=tags,
            url=opt_str(doc, "ruleUrl"),
            raw=doc,
        )
    ]


class GrafanaProvider:
    """Grafana (unified and legacy alerting)."""

    name = "grafana"
    signs = True
    signature_headers: tuple[str, ...] = (GRAFANA_HEADER, GENERIC_HEADER)

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: ProviderSecrets) -> bool:
        return any_verified(
            check_generic(headers, body, secrets.webhook_secret),
            check_grafana(headers, body, secrets.grafana),
        )

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedPayload:
        doc = load_object(body)
        if "alerts" in doc:
            alerts = parse_group(doc, "Grafana alert")
        elif "ruleId" in doc or "evalMatches" in doc:
            alerts = _parse_legacy(doc)
        else:
            raise InvalidPayload(
                "not a Grafana webhook: expected alerts[] (unified alerting) or ruleId (legacy)"
            )
        return ParsedPayload(alerts=alerts, delivery_id=header(headers, "x-webhook-id"))

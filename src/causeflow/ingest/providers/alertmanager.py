"""Prometheus Alertmanager `webhook_config` payloads (version 4): one delivery, many alerts.

Each `alerts[]` entry becomes one alert keyed by its own `fingerprint` (Alertmanager's hash of the
label set); severity comes from the `severity` label. Grafana's unified alerting sends the same
shape, so `grafana.py` reuses `parse_group`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from causeflow.ingest.fingerprint import clamp_fingerprint, labels_fingerprint
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
    opt_obj,
    opt_str,
    str_map,
    title_text,
    to_rfc3339,
)
from causeflow.ingest.providers.signatures import GENERIC_HEADER, any_verified, check_generic

# Values of the `severity` label, matched case-insensitively.
SEVERITY_MAP: dict[str, str] = {
    "critical": "critical",
    "crit": "critical",
    "page": "critical",
    "fatal": "critical",
    "emergency": "critical",
    "high": "high",
    "error": "high",
    "major": "high",
    "medium": "medium",
    "warning": "medium",
    "warn": "medium",
    "low": "low",
    "minor": "low",
    "notice": "low",
    "info": "info",
    "informational": "info",
    "none": "info",
}
STATUS_MAP: dict[str, AlertStatus] = {"firing": "firing", "resolved": "resolved"}
DEFAULT_SEVERITY = "medium"

# Labels that name the service and environment, first match wins.
# (Not `job`: that names the scrape job, e.g. node-exporter, not the service in trouble.)
SERVICE_LABELS = ("service", "service_name", "app", "application", "app_kubernetes_io_name")
ENVIRONMENT_LABELS = ("environment", "env", "deployment_environment")


def _first_label(labels: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if labels.get(name):
            return labels[name]
    return None


def parse_alert(
    alert: object, index: int, group_status: str | None, fallback_title: str
) -> NormalizedAlert:
    """One `alerts[]` entry of an Alertmanager-shaped group."""
    where = f"alerts[{index}]."
    if not isinstance(alert, dict):
        raise InvalidPayload(f"alerts[{index}] must be an object")
    if not isinstance(alert.get("labels"), dict):
        raise InvalidPayload(f"{where}labels must be an object")
    labels = str_map(alert["labels"])
    annotations = str_map(opt_obj(alert, "annotations"))
    raw_status = opt_str(alert, "status") or group_status
    status = lookup(STATUS_MAP, raw_status)
    if status is None:
        raise InvalidPayload(f"{where}status must be firing or resolved, not {raw_status!r}")
    # Older Alertmanagers sent no per-alert fingerprint; the label-set hash is the same identity.
    fingerprint = opt_str(alert, "fingerprint") or labels_fingerprint(labels)
    title = labels.get("alertname") or annotations.get("summary")
    description = (
        annotations.get("description") or annotations.get("summary") or annotations.get("message")
    )
    moment = alert.get("startsAt") if status == "firing" else alert.get("endsAt")
    return NormalizedAlert(
        fingerprint=clamp_fingerprint(fingerprint),
        status=status,
        title=title_text(title, fallback_title),
        description=description,
        severity=lookup(SEVERITY_MAP, labels.get("severity")) or DEFAULT_SEVERITY,
        service=_first_label(labels, SERVICE_LABELS),
        environment=_first_label(labels, ENVIRONMENT_LABELS),
        labels=labels,
        url=opt_str(alert, "generatorURL"),
        raw=alert,
        occurred_at=to_rfc3339(moment),
    )


def parse_group(doc: dict[str, Any], fallback_title: str) -> list[NormalizedAlert]:
    """Every alert of a group notification (`alerts` must be an array)."""
    alerts = doc.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidPayload("alerts must be an array")
    group_status = opt_str(doc, "status")
    return [parse_alert(alert, i, group_status, fallback_title) for i, alert in enumerate(alerts)]


class AlertmanagerProvider:
    """Alertmanager's webhook receiver; it cannot sign beyond our generic header."""

    name = "alertmanager"
    signs = False
    signature_headers: tuple[str, ...] = (GENERIC_HEADER,)

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: ProviderSecrets) -> bool:
        return any_verified(check_generic(headers, body, secrets.webhook_secret))

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedPayload:
        doc = load_object(body)
        alerts = parse_group(doc, "Alertmanager alert")
        return ParsedPayload(alerts=alerts, delivery_id=header(headers, "x-webhook-id"))

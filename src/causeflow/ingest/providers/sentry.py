"""Sentry integration-platform webhooks: issue alerts, metric alerts and issue state changes.

The resource is named by `Sentry-Hook-Resource` (`event_alert`, `metric_alert`, `issue`); other
resources (installation, comments, ...) carry no alert and are accepted with none. Issue alerts
and issue webhooks are keyed by the issue id, so `issue` `resolved` closes what an issue alert
opened; metric alerts are keyed `metric_alert:<incident id>` (a separate id space).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from causeflow.ingest.fingerprint import clamp_fingerprint
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
    scalar,
    str_list,
    title_text,
    to_rfc3339,
)
from causeflow.ingest.providers.signatures import (
    GENERIC_HEADER,
    SENTRY_HEADER,
    any_verified,
    check_generic,
    check_sentry,
)

# Event / issue `level`.
LEVEL_MAP: dict[str, str] = {
    "fatal": "critical",
    "error": "high",
    "warning": "medium",
    "info": "info",
    "debug": "info",
    "sample": "info",
}
# Metric alert `action`: (status, severity).
METRIC_ACTION_MAP: dict[str, tuple[AlertStatus, str | None]] = {
    "critical": ("firing", "critical"),
    "warning": ("firing", "medium"),
    "resolved": ("resolved", None),
}
# Issue webhook `action`; assigned / archived / ignored change no alert state.
ISSUE_ACTION_MAP: dict[str, AlertStatus | None] = {
    "created": "firing",
    "unresolved": "firing",
    "resolved": "resolved",
    "assigned": None,
    "archived": None,
    "ignored": None,
}
DEFAULT_SEVERITY = "high"
ALERT_RESOURCES = ("event_alert", "metric_alert", "issue")


def _tag_labels(tags: object) -> dict[str, str]:
    """Sentry's `tags`: `[["key", "value"], ...]` (or `{"key": ..., "value": ...}` objects)."""
    labels: dict[str, str] = {}
    for tag in tags if isinstance(tags, list) else []:
        key: str | None = None
        value: str | None = None
        if isinstance(tag, list) and len(tag) == 2:
            key, value = scalar(tag[0]), scalar(tag[1])
        elif isinstance(tag, dict):
            key, value = opt_str(tag, "key"), opt_str(tag, "value")
        if key and value is not None:
            labels[key] = value
    return labels


def _event_alert(doc: dict[str, Any], data: dict[str, Any]) -> list[NormalizedAlert]:
    event = req_obj(data, "event", "data.")
    issue_id = req_str(event, "issue_id", "data.event.")
    labels = _tag_labels(event.get("tags"))
    rule = opt_str(data, "triggered_rule")
    culprit = opt_str(event, "culprit")
    details = [f"Alert rule: {rule}" if rule else None, f"Culprit: {culprit}" if culprit else None]
    return [
        NormalizedAlert(
            fingerprint=clamp_fingerprint(issue_id),
            status="firing",
            title=title_text(opt_str(event, "title") or rule, f"Sentry issue {issue_id}"),
            description="\n".join(d for d in details if d) or None,
            severity=lookup(LEVEL_MAP, opt_str(event, "level")) or DEFAULT_SEVERITY,
            service=labels.get("service"),
            environment=opt_str(event, "environment") or labels.get("environment"),
            labels=labels,
            url=opt_str(event, "web_url"),
            raw=doc,
            occurred_at=to_rfc3339(event.get("datetime")),
        )
    ]


def _metric_alert(doc: dict[str, Any], data: dict[str, Any]) -> list[NormalizedAlert]:
    action = opt_str(doc, "action")
    mapped = lookup(METRIC_ACTION_MAP, action)
    if mapped is None:
        raise InvalidPayload(
            f"metric alert action must be critical, warning or resolved: {action!r}"
        )
    status, severity = mapped
    incident = req_obj(data, "metric_alert", "data.")
    incident_id = req_str(incident, "id", "data.metric_alert.")
    rule = opt_obj(incident, "alert_rule") or {}
    labels = {
        key: value
        for key, value in {
            "alert_rule_id": opt_str(rule, "id"),
            "dataset": opt_str(rule, "dataset"),
            "aggregate": opt_str(rule, "aggregate"),
            "query": opt_str(rule, "query"),
            "projects": ",".join(str_list(opt_list(rule, "projects"))) or None,
        }.items()
        if value
    }
    title = (
        opt_str(rule, "name") or opt_str(data, "description_title") or opt_str(incident, "title")
    )
    moment = incident.get("date_closed") if status == "resolved" else incident.get("date_detected")
    return [
        NormalizedAlert(
            fingerprint=clamp_fingerprint(f"metric_alert:{incident_id}"),
            status=status,
            title=title_text(title, f"Sentry metric alert {incident_id}"),
            description=opt_str(data, "description_text"),
            severity=severity or DEFAULT_SEVERITY,
            service=None,
            environment=opt_str(rule, "environment"),
            labels=labels,
            url=opt_str(data, "web_url"),
            raw=doc,
            occurred_at=to_rfc3339(moment),
        )
    ]


def _issue(doc: dict[str, Any], data: dict[str, Any]) -> list[NormalizedAlert]:
    action = opt_str(doc, "action")
    if action is None:
        raise InvalidPayload("action is required for an issue webhook")
    status = lookup(ISSUE_ACTION_MAP, action)
    if status is None:
        return []
    issue = req_obj(data, "issue", "data.")
    issue_id = req_str(issue, "id", "data.issue.")
    project = opt_obj(issue, "project") or {}
    labels = {
        key: value
        for key, value in {
            "project": opt_str(project, "slug"),
            "short_id": opt_str(issue, "shortId"),
            "platform": opt_str(issue, "platform"),
            "substatus": opt_str(issue, "substatus"),
        }.items()
        if value
    }
    return [
        NormalizedAlert(
            fingerprint=clamp_fingerprint(issue_id),
            status=status,
            title=title_text(opt_str(issue, "title"), f"Sentry issue {issue_id}"),
            description=opt_str(issue, "culprit"),
            severity=lookup(LEVEL_MAP, opt_str(issue, "level")) or DEFAULT_SEVERITY,
            service=opt_str(project, "slug"),
            environment=None,
            labels=labels,
            url=opt_str(issue, "web_url") or opt_str(issue, "permalink"),
            raw=doc,
            occurred_at=to_rfc3339(issue.get("lastSeen")) if status == "firing" else None,
        )
    ]


class SentryProvider:
    """Sentry internal or public integration webhooks."""

    name = "sentry"
    signs = True
    signature_headers: tuple[str, ...] = (SENTRY_HEADER, GENERIC_HEADER)

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: ProviderSecrets) -> bool:
        return any_verified(
            check_generic(headers, body, secrets.webhook_secret),
            check_sentry(headers, body, secrets.sentry),
        )

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedPayload:
        doc = load_object(body)
        delivery_id = header(headers, "request-id") or header(headers, "x-webhook-id")
        resource = (header(headers, "sentry-hook-resource") or "").lower()
        if resource and resource not in ALERT_RESOURCES:
            return ParsedPayload(alerts=[], delivery_id=delivery_id)
        data = req_obj(doc, "data", "")
        if not resource:  # no header (a replay tool): tell the resources apart by shape
            if "metric_alert" in data:
                resource = "metric_alert"
            elif "event" in data:
                resource = "event_alert"
            elif "issue" in data:
                resource = "issue"
            else:
                raise InvalidPayload("data has none of event, metric_alert or issue")
        if resource == "event_alert":
            alerts = _event_alert(doc, data)
        elif resource == "metric_alert":
            alerts = _metric_alert(doc, data)
        else:
            alerts = _issue(doc, data)
        return ParsedPayload(alerts=alerts, delivery_id=delivery_id)

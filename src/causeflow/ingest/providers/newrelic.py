"""New Relic: workflow webhooks (the template published in docs/providers.md, or New Relic's
default one) and legacy alert-channel webhooks.

Workflow notifications are keyed by the issue id (`issueId`, or `id` in New Relic's default
template) and resolve on `state` CLOSED; legacy ones by `incident_id`, resolving on
`current_state` closed.
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
    first_str,
    header,
    load_object,
    lookup,
    opt_list,
    opt_str,
    str_list,
    str_map,
    title_text,
    to_rfc3339,
)
from causeflow.ingest.providers.signatures import GENERIC_HEADER, any_verified, check_generic

# Workflow `state`.
STATE_MAP: dict[str, AlertStatus] = {
    "created": "firing",
    "activated": "firing",
    "acknowledged": "acknowledged",
    "closed": "resolved",
}
# Workflow `priority`.
PRIORITY_MAP: dict[str, str] = {
    "critical": "critical",
    "high": "high",
    "medium": "medium",
    "low": "low",
}
# Legacy `current_state`; the channel's test message ("test") is not an alert.
LEGACY_STATE_MAP: dict[str, AlertStatus | None] = {
    "open": "firing",
    "acknowledged": "acknowledged",
    "closed": "resolved",
    "test": None,
}
# Legacy `severity`.
LEGACY_SEVERITY_MAP: dict[str, str] = {
    "critical": "critical",
    "warning": "medium",
    "info": "info",
}
DEFAULT_SEVERITY = "high"


def _joined(value: object) -> str | None:
    return ", ".join(str_list(value)) or None


def _workflow(doc: dict[str, Any]) -> list[NormalizedAlert]:
    issue_id = opt_str(doc, "issueId") or opt_str(doc, "id")
    if issue_id is None:
        raise InvalidPayload("issueId (or id) is required for a New Relic workflow notification")
    raw_state = opt_str(doc, "state")
    status = lookup(STATE_MAP, raw_state)
    if status is None:
        raise InvalidPayload(
            f"state must be CREATED, ACTIVATED, ACKNOWLEDGED or CLOSED: {raw_state!r}"
        )
    entities = str_list(doc.get("impactedEntities"))
    labels = {
        key: value
        for key, value in {
            "policies": _joined(doc.get("alertPolicyNames")),
            "conditions": _joined(doc.get("alertConditionNames")),
            "sources": _joined(doc.get("sources")),
            "entities": ", ".join(entities) or None,
            "trigger": opt_str(doc, "trigger"),
            "workflow": opt_str(doc, "workflowName"),
        }.items()
        if value
    }
    moment = doc.get("updatedAt") or doc.get("createdAt")
    return [
        NormalizedAlert(
            fingerprint=clamp_fingerprint(issue_id),
            status=status,
            title=title_text(first_str(doc.get("title")), f"New Relic issue {issue_id}"),
            description="\n".join(str_list(doc.get("description"))) or None,
            severity=lookup(PRIORITY_MAP, opt_str(doc, "priority")) or DEFAULT_SEVERITY,
            service=entities[0] if entities else None,
            environment=None,
            labels=labels,
            url=opt_str(doc, "issueUrl"),
            raw=doc,
            occurred_at=to_rfc3339(moment),
        )
    ]


def _legacy(doc: dict[str, Any]) -> list[NormalizedAlert]:
    raw_state = opt_str(doc, "current_state")
    if raw_state is None or raw_state.lower() not in LEGACY_STATE_MAP:
        raise InvalidPayload(f"current_state must be open, acknowledged or closed: {raw_state!r}")
    status = LEGACY_STATE_MAP[raw_state.lower()]
    if status is None:
        return []
    incident_id = opt_str(doc, "incident_id")
    if incident_id is None:
        raise InvalidPayload("incident_id is required for a legacy New Relic webhook")
    targets = [t for t in opt_list(doc, "targets") if isinstance(t, dict)]
    labels = str_map(targets[0].get("labels")) if targets else {}
    for key in ("policy_name", "condition_name", "account_name"):
        if opt_str(doc, key):
            labels[key] = opt_str(doc, key) or ""
    return [
        NormalizedAlert(
            fingerprint=clamp_fingerprint(incident_id),
            status=status,
            title=title_text(
                opt_str(doc, "condition_name") or opt_str(doc, "details"),
                f"New Relic incident {incident_id}",
            ),
            description=opt_str(doc, "details"),
            severity=lookup(LEGACY_SEVERITY_MAP, opt_str(doc, "severity")) or DEFAULT_SEVERITY,
            service=opt_str(targets[0], "name") if targets else None,
            environment=None,
            labels=labels,
            url=opt_str(doc, "incident_url"),
            raw=doc,
            occurred_at=to_rfc3339(doc.get("timestamp")),
        )
    ]


class NewRelicProvider:
    """New Relic workflows (webhook destination) and legacy alert channels."""

    name = "newrelic"
    signs = False
    signature_headers: tuple[str, ...] = (GENERIC_HEADER,)

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: ProviderSecrets) -> bool:
        return any_verified(check_generic(headers, body, secrets.webhook_secret))

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedPayload:
        doc = load_object(body)
        if "current_state" in doc or "incident_id" in doc:
            alerts = _legacy(doc)
        elif "state" in doc:
            alerts = _workflow(doc)
        else:
            raise InvalidPayload(
                "not a New Relic webhook: expected state (workflow) or current_state (legacy)"
            )
        return ParsedPayload(alerts=alerts, delivery_id=header(headers, "x-webhook-id"))

"""One realistic ``data`` example per event type, served by ``GET /v1/event-types``.

The ids are fixed, well-formed prefixed ULIDs, so the examples read as one coherent story
(a Datadog alert becomes an incident, is investigated, remediated and resolved).
"""

from __future__ import annotations

from typing import Any

TENANT = "ten_01M86BHRT3M9S346Q3D25VT4F5"
USER = "usr_01M86BHSSBV37E3S3E28JT97KB"
INCIDENT = "inc_01M86BHTRK6CQ643DZVMXXQKFB"
REMEDIATION = "rem_01M86BHVQVF5KZNWJ47TAN9ZT2"
APPROVAL = "apr_01M86BHWQ34MNPZX45HY43KWJR"
INTEGRATION = "int_01M86BHXPBP1XPA7Z3DJ8FSSZ5"
TRIGGER = "trg_01M86BHYNKAWSH8VHTPRE95B9E"
PATTERN = "ptn_01M86BHZMVE0ZBGJ09TQM83XSS"
SUBSCRIPTION = "sub_01M86BJ0M3SS6YS3C4DWA7N360"
DELIVERY = "msg_01M86BJ1KB96Q14DR9GPQY77ZX"
EVENT = "evt_01M86BJ2JKYYK596NGYA1DQ91K"

_TITLE = "High error rate on checkout-api"
_REMEDIATION_TITLE = "Roll back checkout-api to v2.41.0"

EXAMPLES: dict[str, dict[str, Any]] = {
    "tenant.created": {
        "tenantId": TENANT,
        "name": "Acme Corp",
        "plan": "business",
        "createdAt": "2026-11-24T08:42:53.123Z",
    },
    "tenant.updated": {"tenantId": TENANT, "changes": {"plan": "enterprise"}},
    "user.created": {"userId": USER, "email": "dana@acme.example", "role": "member"},
    "user.updated": {"userId": USER, "changes": {"role": "admin"}},
    "user.deleted": {"userId": USER, "email": "dana@acme.example"},
    "incident.created": {
        "incidentId": INCIDENT,
        "title": _TITLE,
        "severity": "critical",
        "status": "open",
        "source": "datadog",
    },
    "incident.status_changed": {
        "incidentId": INCIDENT,
        "previousStatus": "open",
        "newStatus": "investigating",
        "title": _TITLE,
    },
    "investigation.progress": {
        "incidentId": INCIDENT,
        "message": "Error rate rose 40x two minutes after deploy v2.42.0 of checkout-api.",
        "agentName": "deploy-correlator",
        "stepIndex": 1,
        "totalSteps": 4,
    },
    "investigation.completed": {
        "incidentId": INCIDENT,
        "rootCause": "Deploy v2.42.0 exhausts the payments database connection pool.",
        "confidence": 0.87,
        "recommendedActions": [
            "Roll back checkout-api to v2.41.0",
            "Raise the connection pool limit before redeploying",
        ],
    },
    "investigation.known_solution_found": {
        "incidentId": INCIDENT,
        "matchedPatternId": PATTERN,
        "matchedTitle": "Connection pool exhaustion after deploy",
        "confidence": 0.92,
        "runbookUrl": "https://runbooks.acme.example/checkout/connection-pool",
    },
    "remediation.proposed": {
        "incidentId": INCIDENT,
        "remediationId": REMEDIATION,
        "title": _REMEDIATION_TITLE,
        "requiresApproval": True,
        "steps": [
            "Pause the checkout-api deploy pipeline",
            "Roll back checkout-api to v2.41.0",
            "Watch the 5xx rate for 10 minutes",
        ],
    },
    "remediation.approved": {
        "incidentId": INCIDENT,
        "remediationId": REMEDIATION,
        "approvedBy": USER,
    },
    "remediation.rejected": {
        "incidentId": INCIDENT,
        "remediationId": REMEDIATION,
        "rejectedBy": USER,
        "reason": "Roll forward with a hotfix instead",
    },
    "remediation.executed": {
        "incidentId": INCIDENT,
        "remediationId": REMEDIATION,
        "outcome": "success",
        "durationMs": 48250,
    },
    "approval.requested": {
        "approvalId": APPROVAL,
        "incidentId": INCIDENT,
        "remediationId": REMEDIATION,
        "title": _REMEDIATION_TITLE,
        "expiresAt": "2026-11-27T09:12:53.123Z",
    },
    "approval.resolved": {
        "approvalId": APPROVAL,
        "incidentId": INCIDENT,
        "remediationId": REMEDIATION,
        "decision": "approved",
        "decidedBy": USER,
    },
    "integration.connected": {
        "integrationId": INTEGRATION,
        "provider": "datadog",
        "connectedBy": USER,
    },
    "integration.disconnected": {
        "integrationId": INTEGRATION,
        "provider": "datadog",
        "disconnectedBy": USER,
    },
    "trigger.created": {
        "triggerId": TRIGGER,
        "triggerSlug": "github-deploys",
        "provider": "github",
    },
    "trigger.deleted": {
        "triggerId": TRIGGER,
        "triggerSlug": "github-deploys",
        "provider": "github",
    },
    "trigger.event_received": {
        "triggerId": TRIGGER,
        "triggerSlug": "github-deploys",
        "provider": "github",
        "actionTaken": "incident_attached",
        "incidentId": INCIDENT,
    },
    "knowledge.pattern_extracted": {
        "patternId": PATTERN,
        "incidentId": INCIDENT,
        "summary": "Deploys that raise per-request queries exhaust the payments pool.",
    },
    "webhook.subscription_disabled": {
        "subscriptionId": SUBSCRIPTION,
        "url": "https://hooks.acme.example/causeflow",
        "reason": "endpoint_gone",
    },
    "webhook.delivery_exhausted": {
        "subscriptionId": SUBSCRIPTION,
        "deliveryId": DELIVERY,
        "eventId": EVENT,
        "attempts": 8,
        "lastError": "HTTP 503 Service Unavailable",
    },
}

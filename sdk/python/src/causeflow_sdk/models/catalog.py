"""The event catalog: every event type with its domain, data model, example and emitter.

Owns ``validate_data`` (the check ``POST /v1/events`` runs on each published ``data``) and
``sample_data`` (well-formed payloads for tests and ``causeflow trigger``). Models are built once
at import; JSON Schemas are rendered on first request and cached.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from causeflow_sdk.models import events as ev
from causeflow_sdk.models.examples import EXAMPLES

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DOMAINS: tuple[str, ...] = (
    "tenant",
    "user",
    "ingestion",
    "investigation",
    "remediation",
    "integration",
    "code intelligence",
    "operations",
)


@dataclass(frozen=True)
class EventType:
    """One catalog entry, as served by ``GET /v1/event-types``."""

    name: str
    domain: str
    description: str
    version: int
    deprecated: bool
    data_model: type[BaseModel]
    example: dict[str, Any]
    emitted_by: str

    @property
    def operational(self) -> bool:
        """True for the two delivery-about-delivery types of docs/reference.md §5.3."""
        return self.domain == "operations"

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (Draft 2020-12) of this type's ``data``; a fresh copy each call."""
        return copy.deepcopy(_schema(self.name, self.description, self.data_model))

    def describe(self) -> dict[str, Any]:
        """The public description of this type, camelCase keys, JSON-ready."""
        return {
            "name": self.name,
            "domain": self.domain,
            "description": self.description,
            "version": self.version,
            "deprecated": self.deprecated,
            "schema": self.json_schema(),
            "example": copy.deepcopy(self.example),
            "emittedBy": self.emitted_by,
        }


@cache
def _schema(name: str, description: str, model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    title = schema.pop("title")
    return {"$schema": JSON_SCHEMA_DIALECT, "title": title, "description": description, **schema}


_PUBLISH = "POST /v1/events (events:publish key)"

# (name, domain, description, data model, emitted by), in the order of docs/reference.md §3.2.
_ENTRIES: tuple[tuple[str, str, str, type[BaseModel], str], ...] = (
    (
        "tenant.created",
        "tenant",
        "A tenant is provisioned.",
        ev.TenantCreatedData,
        "POST /v1/tenants",
    ),
    (
        "tenant.updated",
        "tenant",
        "A tenant's settings or plan change.",
        ev.TenantUpdatedData,
        "PATCH /v1/tenant",
    ),
    ("user.created", "user", "A user joins a tenant.", ev.UserCreatedData, "POST /v1/users"),
    (
        "user.updated",
        "user",
        "A user's role or profile changes.",
        ev.UserUpdatedData,
        "PATCH /v1/users/{id}",
    ),
    ("user.deleted", "user", "A user is removed.", ev.UserDeletedData, "DELETE /v1/users/{id}"),
    (
        "incident.created",
        "ingestion",
        "An incident opens, from an alert or manually.",
        ev.IncidentCreatedData,
        "POST /v1/incidents; POST /v1/webhooks/{tenantId}/{provider}",
    ),
    (
        "incident.status_changed",
        "ingestion",
        "An incident's lifecycle status moves.",
        ev.IncidentStatusChangedData,
        "PATCH /v1/incidents/{id}; automatic lifecycle moves",
    ),
    (
        "investigation.progress",
        "investigation",
        "An investigation agent reports a finding.",
        ev.InvestigationProgressData,
        _PUBLISH,
    ),
    (
        "investigation.completed",
        "investigation",
        "An investigation finishes.",
        ev.InvestigationCompletedData,
        _PUBLISH,
    ),
    (
        "investigation.known_solution_found",
        "investigation",
        "A runbook or prior incident matches the incident.",
        ev.InvestigationKnownSolutionFoundData,
        _PUBLISH,
    ),
    (
        "remediation.proposed",
        "remediation",
        "A remediation plan is proposed.",
        ev.RemediationProposedData,
        "POST /v1/incidents/{id}/remediations",
    ),
    (
        "remediation.approved",
        "remediation",
        "A remediation is approved.",
        ev.RemediationApprovedData,
        "POST /v1/remediations/{id}/approve; POST /v1/notifications/approvals/{id}/respond",
    ),
    (
        "remediation.rejected",
        "remediation",
        "A remediation is rejected, or its approval expires.",
        ev.RemediationRejectedData,
        "POST /v1/remediations/{id}/reject; approval respond/expiry",
    ),
    (
        "remediation.executed",
        "remediation",
        "A remediation's execution finished.",
        ev.RemediationExecutedData,
        "POST /v1/remediations/{id}/executed",
    ),
    (
        "approval.requested",
        "remediation",
        "A remediation step needs manual approval.",
        ev.ApprovalRequestedData,
        "POST /v1/incidents/{id}/remediations (requiresApproval)",
    ),
    (
        "approval.resolved",
        "remediation",
        "An approval is granted, rejected or expires.",
        ev.ApprovalResolvedData,
        "POST /v1/notifications/approvals/{id}/respond; approval expiry job",
    ),
    (
        "integration.connected",
        "integration",
        "An integration is activated.",
        ev.IntegrationConnectedData,
        "POST /v1/integrations",
    ),
    (
        "integration.disconnected",
        "integration",
        "An integration is deactivated.",
        ev.IntegrationDisconnectedData,
        "DELETE /v1/integrations/{id}",
    ),
    (
        "trigger.created",
        "integration",
        "An automation trigger is configured.",
        ev.TriggerCreatedData,
        "POST /v1/triggers",
    ),
    (
        "trigger.deleted",
        "integration",
        "An automation trigger is removed.",
        ev.TriggerDeletedData,
        "DELETE /v1/triggers/{id}",
    ),
    (
        "trigger.event_received",
        "integration",
        "A trigger fires on an incoming event.",
        ev.TriggerEventReceivedData,
        "POST /v1/triggers/{id}/events",
    ),
    (
        "knowledge.pattern_extracted",
        "code intelligence",
        "A failure pattern is extracted.",
        ev.KnowledgePatternExtractedData,
        _PUBLISH,
    ),
    (
        "webhook.subscription_disabled",
        "operations",
        "A webhook subscription is disabled (its endpoint answered 410, or it kept failing).",
        ev.WebhookSubscriptionDisabledData,
        "delivery worker (410 or auto-disable)",
    ),
    (
        "webhook.delivery_exhausted",
        "operations",
        "A delivery gave up after its last retry.",
        ev.WebhookDeliveryExhaustedData,
        "delivery worker (retries exhausted)",
    ),
)

CATALOG: dict[str, EventType] = {
    name: EventType(
        name=name,
        domain=domain,
        description=description,
        version=1,
        deprecated=False,
        data_model=model,
        example=EXAMPLES[name],
        emitted_by=emitted_by,
    )
    for name, domain, description, model, emitted_by in _ENTRIES
}
OPERATIONAL_TYPES: tuple[str, ...] = tuple(n for n, t in CATALOG.items() if t.operational)
CATALOG_TYPES: tuple[str, ...] = tuple(n for n, t in CATALOG.items() if not t.operational)

# Field name -> wire alias per type, so sample_data accepts snake_case overrides too.
_ALIASES: dict[str, dict[str, str]] = {
    name: {f: info.alias or f for f, info in t.data_model.model_fields.items()}
    for name, t in CATALOG.items()
}


class DataValidationError(Exception):
    """An event's ``data`` does not match its type's schema.

    ``errors`` lists ``{"path": "data.severity", "message": "..."}``, one per problem.
    """

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        summary = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
        super().__init__(f"invalid event data: {summary}")


def get_event_type(name: str) -> EventType | None:
    """The catalog entry for ``name``, or None if there is none."""
    return CATALOG.get(name)


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(("data", *(str(part) for part in loc)))


def validate_data(name: str, data: object) -> dict[str, Any]:
    """Validate ``data`` for event type ``name``; return it JSON-ready (extra fields kept).

    Raises KeyError for an unknown type and DataValidationError (paths prefixed ``data.``).
    """
    model = CATALOG[name].data_model
    if not isinstance(data, dict):
        raise DataValidationError([{"path": "data", "message": "Input should be an object"}])
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise DataValidationError(
            [{"path": _path(e["loc"]), "message": e["msg"]} for e in errors]
        ) from None
    return parsed.model_dump(mode="json", exclude_unset=True, by_alias=True)


def sample_data(name: str, **overrides: Any) -> dict[str, Any]:
    """A valid ``data`` for ``name`` (its example), with ``overrides`` merged in and re-validated.

    Override keys may be wire names (``incidentId``) or field names (``incident_id``); any other
    key is added as an extra field. Raises KeyError / DataValidationError like validate_data.
    """
    aliases = _ALIASES[name]
    data = copy.deepcopy(CATALOG[name].example)
    for key, value in overrides.items():
        data[aliases.get(key, key)] = value
    return validate_data(name, data)

"""The ``data`` model of every event type, one class per type, in catalog order.

Each class lists the fields of docs/reference.md §3.2 (all required); producers may add more, which
are kept. Field descriptions are the documentation served with the JSON Schema.
"""

from __future__ import annotations

from pydantic import Field

from causeflow_sdk.models.common import (
    ApprovalId,
    Changes,
    Confidence,
    Count,
    Decision,
    DeliveryId,
    Email,
    EventData,
    EventId,
    IncidentId,
    IncidentStatus,
    IntegrationId,
    Outcome,
    PatternId,
    Plan,
    RemediationId,
    Role,
    Severity,
    SubscriptionId,
    TenantId,
    Text,
    Timestamp,
    TriggerId,
    Url,
    UserId,
)

_ACTOR = "Id of the user (usr_…) or API key (key_…) that acted, or another actor label."
_CHANGES = (
    "The fields that changed: each key is a field name (camelCase), each value its new value."
)


# --- tenant ---------------------------------------------------------------------------------


class TenantCreatedData(EventData):
    tenant_id: TenantId = Field(description="The new tenant.")
    name: Text = Field(description="Display name of the tenant.")
    plan: Plan = Field(description="Billing plan; sets the tenant's rate limit.")
    created_at: Timestamp = Field(description="When the tenant was provisioned (RFC 3339 UTC).")


class TenantUpdatedData(EventData):
    tenant_id: TenantId = Field(description="The tenant whose settings changed.")
    changes: Changes = Field(description=_CHANGES)


# --- user -----------------------------------------------------------------------------------


class UserCreatedData(EventData):
    user_id: UserId = Field(description="The new user.")
    email: Email = Field(description="The user's email address.")
    role: Role = Field(description="The user's role in the tenant.")


class UserUpdatedData(EventData):
    user_id: UserId = Field(description="The user whose role or profile changed.")
    changes: Changes = Field(description=_CHANGES)


class UserDeletedData(EventData):
    user_id: UserId = Field(description="The removed user.")
    email: Email = Field(description="The removed user's email address.")


# --- ingestion ------------------------------------------------------------------------------


class IncidentCreatedData(EventData):
    incident_id: IncidentId = Field(description="The new incident.")
    title: Text = Field(description="Short human-readable summary of the incident.")
    severity: Severity = Field(description="Severity of the incident.")
    status: IncidentStatus = Field(description="Lifecycle status at creation (usually open).")
    source: Text = Field(
        description=(
            "Where the incident came from: the inbound provider (datadog, grafana, cloudwatch, "
            "sentry, pagerduty, newrelic, alertmanager, custom) or manual."
        )
    )


class IncidentStatusChangedData(EventData):
    incident_id: IncidentId = Field(description="The incident whose status moved.")
    previous_status: IncidentStatus = Field(description="Status before the move.")
    new_status: IncidentStatus = Field(description="Status after the move.")
    title: Text = Field(description="The incident's title, for display without a lookup.")


# --- investigation --------------------------------------------------------------------------


class InvestigationProgressData(EventData):
    incident_id: IncidentId = Field(description="The incident under investigation.")
    message: Text = Field(description="The finding or progress note, human-readable.")
    agent_name: Text = Field(description="Name of the agent reporting the finding.")
    step_index: Count = Field(description="Zero-based index of the current step.")
    total_steps: Count = Field(description="Number of steps planned (0 when unknown).")


class InvestigationCompletedData(EventData):
    incident_id: IncidentId = Field(description="The investigated incident.")
    root_cause: Text = Field(description="The root cause found, human-readable.")
    confidence: Confidence = Field(description="Confidence in the root cause, from 0 to 1.")
    recommended_actions: list[Text] = Field(
        description="Recommended next actions, each a human-readable sentence, in order."
    )


class InvestigationKnownSolutionFoundData(EventData):
    incident_id: IncidentId = Field(description="The incident a known solution matches.")
    matched_pattern_id: PatternId = Field(description="The knowledge pattern that matched.")
    matched_title: Text = Field(description="Title of the matched runbook or prior incident.")
    confidence: Confidence = Field(description="Confidence of the match, from 0 to 1.")
    runbook_url: Url | None = Field(
        description="Link to the runbook; null when the match has no runbook."
    )


# --- remediation ----------------------------------------------------------------------------


class RemediationProposedData(EventData):
    incident_id: IncidentId = Field(description="The incident the remediation is for.")
    remediation_id: RemediationId = Field(description="The proposed remediation.")
    title: Text = Field(description="Short summary of the remediation plan.")
    requires_approval: bool = Field(
        description="Whether a person must approve it before it runs (emits approval.requested)."
    )
    steps: list[Text] = Field(
        description="The plan's steps in execution order, each a human-readable instruction."
    )


class RemediationApprovedData(EventData):
    incident_id: IncidentId = Field(description="The incident the remediation is for.")
    remediation_id: RemediationId = Field(description="The approved remediation.")
    approved_by: Text = Field(description=_ACTOR)


class RemediationRejectedData(EventData):
    incident_id: IncidentId = Field(description="The incident the remediation is for.")
    remediation_id: RemediationId = Field(description="The rejected remediation.")
    rejected_by: Text | None = Field(description=_ACTOR + " Null when its approval expired.")
    reason: Text = Field(
        description="Why it was rejected; approval_expired when its approval timed out."
    )


class RemediationExecutedData(EventData):
    incident_id: IncidentId = Field(description="The incident the remediation is for.")
    remediation_id: RemediationId = Field(description="The executed remediation.")
    outcome: Outcome = Field(description="Whether the execution succeeded.")
    duration_ms: Count = Field(description="How long the execution took, in milliseconds.")


class ApprovalRequestedData(EventData):
    approval_id: ApprovalId = Field(description="The approval request.")
    incident_id: IncidentId = Field(description="The incident the remediation is for.")
    remediation_id: RemediationId = Field(description="The remediation awaiting approval.")
    title: Text = Field(description="What is to be approved, human-readable.")
    expires_at: Timestamp = Field(
        description="When the request expires unanswered and the remediation is rejected."
    )


class ApprovalResolvedData(EventData):
    approval_id: ApprovalId = Field(description="The approval request.")
    incident_id: IncidentId = Field(description="The incident the remediation is for.")
    remediation_id: RemediationId = Field(description="The remediation decided on.")
    decision: Decision = Field(description="approved, rejected, or expired (nobody answered).")
    decided_by: Text | None = Field(description=_ACTOR + " Null when the approval expired.")


# --- integration ----------------------------------------------------------------------------


class IntegrationConnectedData(EventData):
    integration_id: IntegrationId = Field(description="The activated integration.")
    provider: Text = Field(description="The integrated tool (e.g. datadog, slack, github).")
    connected_by: Text = Field(description=_ACTOR)


class IntegrationDisconnectedData(EventData):
    integration_id: IntegrationId = Field(description="The deactivated integration.")
    provider: Text = Field(description="The integrated tool (e.g. datadog, slack, github).")
    disconnected_by: Text = Field(description=_ACTOR)


class TriggerCreatedData(EventData):
    trigger_id: TriggerId = Field(description="The new automation trigger.")
    trigger_slug: Text = Field(description="The trigger's unique, URL-safe name.")
    provider: Text = Field(description="The tool whose events fire the trigger.")


class TriggerDeletedData(EventData):
    trigger_id: TriggerId = Field(description="The removed automation trigger.")
    trigger_slug: Text = Field(description="The trigger's unique, URL-safe name.")
    provider: Text = Field(description="The tool whose events fired the trigger.")


class TriggerEventReceivedData(EventData):
    trigger_id: TriggerId = Field(description="The trigger that fired.")
    trigger_slug: Text = Field(description="The trigger's unique, URL-safe name.")
    provider: Text = Field(description="The tool that sent the incoming event.")
    action_taken: Text = Field(
        description=(
            "What the trigger did. The service's own trigger endpoint reports one of"
            " `incident_created`, `incident_attached`, `change_recorded`, `ignored` or"
            " `unknown_trigger`; a producer publishing this type may describe its action in words."
        )
    )
    incident_id: IncidentId | None = Field(
        default=None, description="The incident the action opened or attached to, if any."
    )
    incident_ids: list[IncidentId] | None = Field(
        default=None, description="The incidents a recorded change was added to, if any."
    )


# --- code intelligence ----------------------------------------------------------------------


class KnowledgePatternExtractedData(EventData):
    pattern_id: PatternId = Field(description="The extracted failure pattern.")
    incident_id: IncidentId = Field(description="The incident it was extracted from.")
    summary: Text = Field(description="What the pattern describes, human-readable.")


# --- operations -----------------------------------------------------------------------------


class WebhookSubscriptionDisabledData(EventData):
    subscription_id: SubscriptionId = Field(description="The disabled webhook subscription.")
    url: Url = Field(description="The subscription's endpoint URL.")
    reason: Text = Field(
        description="Why it was disabled (e.g. endpoint_gone after a 410, or too many failures)."
    )


class WebhookDeliveryExhaustedData(EventData):
    subscription_id: SubscriptionId = Field(description="The subscription delivered to.")
    delivery_id: DeliveryId = Field(description="The delivery that gave up (msg_…).")
    event_id: EventId = Field(description="The event that could not be delivered.")
    attempts: Count = Field(description="Number of HTTP attempts made.")
    last_error: Text = Field(
        description="The last attempt's failure: an HTTP status line or a network error."
    )

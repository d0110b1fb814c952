"""The event catalog: contents against docs/reference.md §3.2, validation, samples, envelope."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import textwrap
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from causeflow_sdk.models import (
    CATALOG,
    CATALOG_TYPES,
    INCIDENT_STATUSES,
    OPERATIONAL_TYPES,
    SEVERITIES,
    DataValidationError,
    Envelope,
    EventType,
    get_event_type,
    sample_data,
    validate_data,
)

# The catalog of docs/reference.md §3.2 and §5.3, written out independently of the implementation.
REFERENCE_CATALOG: dict[str, tuple[str, set[str]]] = {
    "tenant.created": ("tenant", {"tenantId", "name", "plan", "createdAt"}),
    "tenant.updated": ("tenant", {"tenantId", "changes"}),
    "user.created": ("user", {"userId", "email", "role"}),
    "user.updated": ("user", {"userId", "changes"}),
    "user.deleted": ("user", {"userId", "email"}),
    "incident.created": (
        "ingestion",
        {"incidentId", "title", "severity", "status", "source"},
    ),
    "incident.status_changed": (
        "ingestion",
        {"incidentId", "previousStatus", "newStatus", "title"},
    ),
    "investigation.progress": (
        "investigation",
        {"incidentId", "message", "agentName", "stepIndex", "totalSteps"},
    ),
    "investigation.completed": (
        "investigation",
        {"incidentId", "rootCause", "confidence", "recommendedActions"},
    ),
    "investigation.known_solution_found": (
        "investigation",
        {"incidentId", "matchedPatternId", "matchedTitle", "confidence", "runbookUrl"},
    ),
    "remediation.proposed": (
        "remediation",
        {"incidentId", "remediationId", "title", "requiresApproval", "steps"},
    ),
    "remediation.approved": ("remediation", {"incidentId", "remediationId", "approvedBy"}),
    "remediation.rejected": (
        "remediation",
        {"incidentId", "remediationId", "rejectedBy", "reason"},
    ),
    "remediation.executed": (
        "remediation",
        {"incidentId", "remediationId", "outcome", "durationMs"},
    ),
    "approval.requested": (
        "remediation",
        {"approvalId", "incidentId", "remediationId", "title", "expiresAt"},
    ),
    "approval.resolved": (
        "remediation",
        {"approvalId", "incidentId", "remediationId", "decision", "decidedBy"},
    ),
    "integration.connected": ("integration", {"integrationId", "provider", "connectedBy"}),
    "integration.disconnected": (
        "integration",
        {"integrationId", "provider", "disconnectedBy"},
    ),
    "trigger.created": ("integration", {"triggerId", "triggerSlug", "provider"}),
    "trigger.deleted": ("integration", {"triggerId", "triggerSlug", "provider"}),
    "trigger.event_received": (
        "integration",
        {"triggerId", "triggerSlug", "provider", "actionTaken"},
    ),
    "knowledge.pattern_extracted": (
        "code intelligence",
        {"patternId", "incidentId", "summary"},
    ),
    "webhook.subscription_disabled": ("operations", {"subscriptionId", "url", "reason"}),
    "webhook.delivery_exhausted": (
        "operations",
        {"subscriptionId", "deliveryId", "eventId", "attempts", "lastError"},
    ),
}
ALL_TYPES = list(REFERENCE_CATALOG)

ID_PREFIXES = {
    "tenantId": "ten",
    "userId": "usr",
    "incidentId": "inc",
    "remediationId": "rem",
    "approvalId": "apr",
    "integrationId": "int",
    "triggerId": "trg",
    "patternId": "ptn",
    "matchedPatternId": "ptn",
    "subscriptionId": "sub",
    "deliveryId": "msg",
    "eventId": "evt",
}
ULID = "01M86BHTRK6CQ643DZVMXXQKFB"
EVT = f"evt_{ULID}"
TEN = f"ten_{ULID}"


def schema_validator(name: str) -> Draft202012Validator:
    schema = CATALOG[name].json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def error_paths(name: str, data: object) -> list[str]:
    with pytest.raises(DataValidationError) as info:
        validate_data(name, data)
    return [e["path"] for e in info.value.errors]


# --- contents -------------------------------------------------------------------------------


@pytest.mark.unit
def test_counts_and_order_follow_the_reference() -> None:
    assert len(CATALOG_TYPES) == 22
    assert OPERATIONAL_TYPES == ("webhook.subscription_disabled", "webhook.delivery_exhausted")
    assert list(CATALOG) == ALL_TYPES
    assert list(CATALOG_TYPES) == ALL_TYPES[:22]
    assert SEVERITIES == ("critical", "high", "medium", "low", "info")
    assert INCIDENT_STATUSES == (
        "open",
        "triaging",
        "investigating",
        "awaiting_approval",
        "remediating",
        "resolved",
        "closed",
        "failed",
    )


@pytest.mark.unit
@pytest.mark.parametrize("name", ALL_TYPES)
def test_entry_matches_the_reference(name: str) -> None:
    domain, fields = REFERENCE_CATALOG[name]
    entry = CATALOG[name]
    assert isinstance(entry, EventType)
    assert get_event_type(name) is entry
    assert entry.name == name
    assert entry.domain == domain
    assert entry.version == 1 and entry.deprecated is False
    assert entry.description and entry.emitted_by
    schema = entry.json_schema()
    assert fields <= set(schema["required"])
    assert schema["additionalProperties"] is True
    for prop, spec in schema["properties"].items():
        assert spec.get("description"), f"{name}.{prop} has no description"


@pytest.mark.unit
def test_emitted_by_names_the_operations() -> None:
    assert CATALOG["incident.created"].emitted_by == (
        "POST /v1/incidents; POST /v1/webhooks/{tenantId}/{provider}"
    )
    assert CATALOG["tenant.created"].emitted_by == "POST /v1/tenants"
    assert CATALOG["investigation.progress"].emitted_by == "POST /v1/events (events:publish key)"
    assert CATALOG["webhook.delivery_exhausted"].emitted_by == (
        "delivery worker (retries exhausted)"
    )


@pytest.mark.unit
def test_describe_shape_and_copies() -> None:
    entry = CATALOG["incident.created"]
    described = entry.describe()
    assert list(described) == [
        "name",
        "domain",
        "description",
        "version",
        "deprecated",
        "schema",
        "example",
        "emittedBy",
    ]
    assert described["schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    orjson.dumps(described)
    described["schema"]["properties"].clear()
    described["example"]["title"] = "changed"
    assert entry.json_schema()["properties"]
    assert entry.example["title"] != "changed"


@pytest.mark.unit
def test_unknown_type() -> None:
    assert get_event_type("incident.exploded") is None
    with pytest.raises(KeyError):
        validate_data("incident.exploded", {})
    with pytest.raises(KeyError):
        sample_data("incident.exploded")


# --- examples and samples -------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("name", ALL_TYPES)
def test_example_is_valid_both_ways(name: str) -> None:
    example = CATALOG[name].example
    assert validate_data(name, example) == example
    schema_validator(name).validate(example)


@pytest.mark.unit
@pytest.mark.parametrize("name", ALL_TYPES)
def test_sample_is_valid_with_well_formed_ids(name: str) -> None:
    sample = sample_data(name)
    schema_validator(name).validate(sample)
    assert REFERENCE_CATALOG[name][1] <= set(sample)
    for key, prefix in ID_PREFIXES.items():
        if key in sample:
            assert re.fullmatch(rf"{prefix}_[0-9A-HJKMNP-TV-Z]{{26}}", sample[key]), key


@pytest.mark.unit
def test_sample_overrides_by_wire_or_field_name() -> None:
    other = f"inc_{'Z' * 26}"
    assert sample_data("incident.created", severity="low")["severity"] == "low"
    assert sample_data("incident.created", incidentId=other)["incidentId"] == other
    by_field = sample_data("incident.created", incident_id=other)
    assert by_field["incidentId"] == other and "incident_id" not in by_field
    assert sample_data("incident.created", region="eu-west-1")["region"] == "eu-west-1"
    with pytest.raises(DataValidationError) as info:
        sample_data("incident.created", severity="apocalyptic")
    assert info.value.errors[0]["path"] == "data.severity"


@pytest.mark.unit
def test_samples_are_independent_copies() -> None:
    first = sample_data("remediation.proposed")
    first["steps"].append("mutated")
    assert "mutated" not in sample_data("remediation.proposed")["steps"]
    assert "mutated" not in CATALOG["remediation.proposed"].example["steps"]


# --- validation -----------------------------------------------------------------------------


@pytest.mark.unit
def test_wrong_severity_path() -> None:
    data = sample_data("incident.created")
    data["severity"] = "urgent"
    with pytest.raises(DataValidationError) as info:
        validate_data("incident.created", data)
    assert info.value.errors == [
        {"path": "data.severity", "message": info.value.errors[0]["message"]}
    ]
    assert "critical" in info.value.errors[0]["message"]
    assert "data.severity" in str(info.value)


@pytest.mark.unit
@pytest.mark.parametrize("name", ALL_TYPES)
def test_each_missing_required_field_is_reported_both_ways(name: str) -> None:
    validator = schema_validator(name)
    for field in sorted(REFERENCE_CATALOG[name][1]):
        data = sample_data(name)
        del data[field]
        assert error_paths(name, data) == [f"data.{field}"]
        assert not validator.is_valid(data)


@pytest.mark.unit
def test_extra_fields_are_kept() -> None:
    data = sample_data("investigation.completed")
    data["evidence"] = {"traces": ["t1", "t2"], "score": None}
    data["model"] = "rca-v3"
    out = validate_data("investigation.completed", data)
    assert out["evidence"] == {"traces": ["t1", "t2"], "score": None}
    assert out["model"] == "rca-v3"
    schema_validator("investigation.completed").validate(data)


# Each row: (type, field, bad value, expected path). The published schema must reject it too.
BAD_VALUES: list[tuple[str, str, Any, str]] = [
    ("incident.created", "incidentId", f"rem_{ULID}", "data.incidentId"),
    ("incident.created", "incidentId", f"inc_{ULID[:-1]}", "data.incidentId"),
    ("incident.created", "incidentId", f"inc_{ULID[:-1]}U", "data.incidentId"),
    ("incident.created", "status", "snoozed", "data.status"),
    ("incident.created", "title", "", "data.title"),
    ("incident.created", "title", 42, "data.title"),
    ("incident.status_changed", "newStatus", "done", "data.newStatus"),
    ("investigation.progress", "stepIndex", -1, "data.stepIndex"),
    ("investigation.progress", "stepIndex", "1", "data.stepIndex"),
    ("investigation.progress", "totalSteps", True, "data.totalSteps"),
    ("investigation.progress", "totalSteps", 2.5, "data.totalSteps"),
    ("investigation.completed", "confidence", 1.5, "data.confidence"),
    ("investigation.completed", "confidence", -0.1, "data.confidence"),
    ("investigation.completed", "confidence", "0.9", "data.confidence"),
    ("investigation.completed", "recommendedActions", "restart", "data.recommendedActions"),
    ("investigation.completed", "recommendedActions", ["ok", 7], "data.recommendedActions.1"),
    ("remediation.proposed", "requiresApproval", "yes", "data.requiresApproval"),
    ("remediation.proposed", "steps", [{"do": "x"}], "data.steps.0"),
    ("remediation.executed", "outcome", "partial", "data.outcome"),
    ("remediation.executed", "durationMs", -5, "data.durationMs"),
    ("approval.requested", "expiresAt", "tomorrow", "data.expiresAt"),
    ("approval.requested", "expiresAt", "2026-11-27 08:42:53Z", "data.expiresAt"),
    ("approval.resolved", "decision", "maybe", "data.decision"),
    ("tenant.created", "plan", "free", "data.plan"),
    ("tenant.updated", "changes", ["plan"], "data.changes"),
    ("user.created", "email", "not-an-email", "data.email"),
    ("user.created", "role", "owner", "data.role"),
    ("user.created", "userId", f"USR_{ULID}", "data.userId"),
    ("knowledge.pattern_extracted", "patternId", f"inc_{ULID}", "data.patternId"),
    ("webhook.delivery_exhausted", "deliveryId", f"att_{ULID}", "data.deliveryId"),
    ("webhook.delivery_exhausted", "eventId", f"evt_{ULID.lower()}", "data.eventId"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("name", "field", "value", "path"), BAD_VALUES)
def test_bad_values_rejected_both_ways(name: str, field: str, value: Any, path: str) -> None:
    data = sample_data(name)
    data[field] = value
    assert error_paths(name, data) == [path]
    assert not schema_validator(name).is_valid(data)


@pytest.mark.unit
def test_calendar_check_beyond_the_pattern() -> None:
    assert error_paths(
        "approval.requested",
        sample_data("approval.requested") | {"expiresAt": "2026-02-30T00:00:00.000Z"},
    ) == ["data.expiresAt"]
    ok = sample_data("approval.requested", expiresAt="2026-11-27T10:42:53+01:00")
    assert ok["expiresAt"] == "2026-11-27T10:42:53+01:00"


@pytest.mark.unit
def test_nullable_fields_accept_null() -> None:
    for name, field in [
        ("investigation.known_solution_found", "runbookUrl"),
        ("remediation.rejected", "rejectedBy"),
        ("approval.resolved", "decidedBy"),
    ]:
        data = sample_data(name, **{field: None})
        assert data[field] is None
        schema_validator(name).validate(data)


@pytest.mark.unit
def test_several_errors_and_non_object_data() -> None:
    paths = error_paths("incident.created", {"incidentId": "nope", "severity": "x"})
    assert sorted(paths) == [
        "data.incidentId",
        "data.severity",
        "data.source",
        "data.status",
        "data.title",
    ]
    for bad in (None, [], "incident", 3):
        assert error_paths("incident.created", bad) == ["data"]


@pytest.mark.unit
def test_validate_returns_a_json_ready_copy() -> None:
    data = sample_data("investigation.completed")
    out = validate_data("investigation.completed", data)
    assert out == data and out is not data
    assert orjson.loads(orjson.dumps(out)) == out


# --- envelope -------------------------------------------------------------------------------


def envelope(data: dict[str, Any] | None = None, **extra: Any) -> Envelope:
    return Envelope(
        id=EVT,
        event="incident.created",
        timestamp="2026-11-27T08:42:53.123Z",
        tenantId=TEN,
        data=sample_data("incident.created") if data is None else data,
        **extra,
    )


@pytest.mark.unit
def test_envelope_drops_test_when_none() -> None:
    env = envelope()
    assert "test" not in env.model_dump()
    assert "test" not in orjson.loads(env.model_dump_json())
    assert list(orjson.loads(env.to_json())) == ["id", "event", "timestamp", "tenantId", "data"]


@pytest.mark.unit
def test_envelope_keeps_test_when_set() -> None:
    env = envelope(test=True)
    assert env.model_dump()["test"] is True
    assert orjson.loads(env.to_json())["test"] is True
    assert list(orjson.loads(env.to_json()))[-1] == "test"


@pytest.mark.unit
def test_envelope_round_trips_byte_for_byte() -> None:
    env = envelope(test=True)
    raw = env.to_json()
    again = Envelope.model_validate_json(raw)
    assert again == env and again.to_json() == raw
    data_with_null = copy.deepcopy(env.data) | {"note": None}
    assert orjson.loads(envelope(data=data_with_null).to_json())["data"]["note"] is None


@pytest.mark.unit
def test_envelope_rejects_malformed_ids() -> None:
    with pytest.raises(ValueError):
        Envelope(
            id=f"inc_{ULID}",
            event="incident.created",
            timestamp="2026-11-27T08:42:53.123Z",
            tenantId=TEN,
            data={},
        )


# --- isolation ------------------------------------------------------------------------------


@pytest.mark.process
def test_import_pulls_in_nothing_of_the_server() -> None:
    probe = textwrap.dedent(
        """
        import sys
        import causeflow_sdk.models
        bad = sorted(
            m for m in sys.modules
            if m.split(".")[0] in ("fastapi", "sqlalchemy", "starlette")
            or (m.startswith("causeflow.") and not m.startswith("causeflow_sdk.models"))
        )
        print(",".join(bad))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""

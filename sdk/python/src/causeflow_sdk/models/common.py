"""Shared vocabulary of the event models: enums, prefixed-id and timestamp types, the base model.

Everything here is pure data description (pydantic types that also render to JSON Schema); it
imports nothing of the server, which imports it from the client library's distribution.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic.fields import ComputedFieldInfo, FieldInfo

Severity = Literal["critical", "high", "medium", "low", "info"]
IncidentStatus = Literal[
    "open",
    "triaging",
    "investigating",
    "awaiting_approval",
    "remediating",
    "resolved",
    "closed",
    "failed",
]
Decision = Literal["approved", "rejected", "expired"]
Outcome = Literal["success", "failure"]
Plan = Literal["starter", "pro", "business", "enterprise"]
Role = Literal["admin", "member"]

SEVERITIES: tuple[str, ...] = get_args(Severity)
INCIDENT_STATUSES: tuple[str, ...] = get_args(IncidentStatus)
DECISIONS: tuple[str, ...] = get_args(Decision)
OUTCOMES: tuple[str, ...] = get_args(Outcome)
PLANS: tuple[str, ...] = get_args(Plan)
ROLES: tuple[str, ...] = get_args(Role)

# Crockford base32 without I, L, O, U: the 26-character ULID body of every prefixed id.
ULID_BODY_PATTERN = "[0-9A-HJKMNP-TV-Z]{26}"
# Explicit [0-9] rather than \d: the Rust regex engine behind pydantic treats \d as Unicode
# digits, while the JSON Schema (ECMA-262) reading is ASCII; both must agree.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


def id_pattern(prefix: str) -> str:
    """The anchored regular expression for ids with this prefix (e.g. ``"inc"``)."""
    return f"^{prefix}_{ULID_BODY_PATTERN}$"


TenantId = Annotated[str, StringConstraints(pattern=id_pattern("ten"))]
UserId = Annotated[str, StringConstraints(pattern=id_pattern("usr"))]
IncidentId = Annotated[str, StringConstraints(pattern=id_pattern("inc"))]
RemediationId = Annotated[str, StringConstraints(pattern=id_pattern("rem"))]
ApprovalId = Annotated[str, StringConstraints(pattern=id_pattern("apr"))]
IntegrationId = Annotated[str, StringConstraints(pattern=id_pattern("int"))]
TriggerId = Annotated[str, StringConstraints(pattern=id_pattern("trg"))]
PatternId = Annotated[str, StringConstraints(pattern=id_pattern("ptn"))]
SubscriptionId = Annotated[str, StringConstraints(pattern=id_pattern("sub"))]
DeliveryId = Annotated[str, StringConstraints(pattern=id_pattern("msg"))]
EventId = Annotated[str, StringConstraints(pattern=id_pattern("evt"))]


def _check_calendar(value: str) -> str:
    # The pattern admits 2026-13-45; a real calendar check rejects what no clock can produce.
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not a valid RFC 3339 date-time") from None
    return value


Timestamp = Annotated[
    str,
    StringConstraints(pattern=RFC3339_PATTERN),
    AfterValidator(_check_calendar),
    Field(json_schema_extra={"format": "date-time"}),
]
Text = Annotated[str, StringConstraints(min_length=1)]
Url = Annotated[str, StringConstraints(min_length=1), Field(json_schema_extra={"format": "uri"})]
Email = Annotated[
    str,
    StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$"),
    Field(json_schema_extra={"format": "email"}),
]
Confidence = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=0)]
Changes = dict[str, Any]


def _wire_title(name: str, info: FieldInfo | ComputedFieldInfo) -> str:
    # Titles show in schema viewers; they should read as the wire name, not "Incidentid".
    return to_camel(name)


class EventData(BaseModel):
    """Base of every event's ``data``: camelCase on the wire, snake_case in Python.

    Unknown fields are kept (schemas grow additively within a version). Validation is strict
    (no "3" for 3, no 1 for true) so the server's verdict matches the published JSON Schema.
    """

    model_config = ConfigDict(
        extra="allow",
        strict=True,
        alias_generator=to_camel,
        field_title_generator=_wire_title,
    )

"""Typed event models shared by the server and its client library.

The catalog of event types (``CATALOG``), their ``data`` models, validation and samples, and the
envelope every event travels in. Imports only the standard library, pydantic and orjson.
"""

from causeflow_sdk.models.catalog import (
    CATALOG,
    CATALOG_TYPES,
    DOMAINS,
    OPERATIONAL_TYPES,
    DataValidationError,
    EventType,
    get_event_type,
    sample_data,
    validate_data,
)
from causeflow_sdk.models.common import (
    DECISIONS,
    INCIDENT_STATUSES,
    OUTCOMES,
    PLANS,
    ROLES,
    SEVERITIES,
    Decision,
    EventData,
    IncidentStatus,
    Outcome,
    Severity,
    id_pattern,
)
from causeflow_sdk.models.envelope import Envelope

__all__ = [
    "CATALOG",
    "CATALOG_TYPES",
    "DECISIONS",
    "DOMAINS",
    "INCIDENT_STATUSES",
    "OPERATIONAL_TYPES",
    "OUTCOMES",
    "PLANS",
    "ROLES",
    "SEVERITIES",
    "DataValidationError",
    "Decision",
    "Envelope",
    "EventData",
    "EventType",
    "IncidentStatus",
    "Outcome",
    "Severity",
    "get_event_type",
    "id_pattern",
    "sample_data",
    "validate_data",
]

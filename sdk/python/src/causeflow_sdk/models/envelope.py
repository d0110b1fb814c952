"""The event envelope: the one JSON object an event is, on the stream, in webhooks and in the log.

Field order is fixed (id, event, timestamp, tenantId, data, test) and ``test`` is omitted unless
set, so that serializing the same event always yields the same bytes.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from causeflow_sdk.models.common import EventId, TenantId, Text, Timestamp


class Envelope(BaseModel):
    """One event. ``data`` is validated separately against the catalog (``validate_data``)."""

    model_config = ConfigDict(strict=True)

    id: EventId = Field(description="The event's id (evt_…); its position is the log's order.")
    event: Text = Field(description="The event type, e.g. incident.created.")
    timestamp: Timestamp = Field(description="When the event was recorded (RFC 3339 UTC, ms).")
    tenantId: TenantId = Field(description="The tenant the event belongs to.")
    data: dict[str, Any] = Field(description="The type-specific payload (see the catalog).")
    test: bool | None = Field(
        default=None,
        # Omitted rather than null, so a real event's bytes carry no trace of the flag.
        exclude_if=lambda value: value is None,
        description="True for a test event; absent on real events.",
    )

    def to_json(self) -> bytes:
        """The canonical bytes of this envelope (compact JSON, fixed key order)."""
        return orjson.dumps(self.model_dump(mode="json"))

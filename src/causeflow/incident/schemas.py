"""Wire models of the incident endpoints (camelCase, like every resource)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from causeflow_sdk.models.common import IncidentStatus, Severity

SortOrder = Literal["-createdAt", "createdAt"]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it on both databases alike.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentCreate(_Strict):
    title: Text = Field(min_length=1, max_length=500)
    severity: Severity
    description: Text | None = Field(default=None, max_length=20000)
    service: Text | None = Field(default=None, max_length=200)
    environment: Text | None = Field(default=None, max_length=200)


class IncidentUpdate(_Strict):
    status: IncidentStatus


class IncidentRead(BaseModel):
    id: str
    title: str
    description: str | None
    severity: str
    status: str
    source: str = Field(description="the inbound provider, or manual")
    fingerprint: str | None = Field(description="the alert fingerprint it was opened for")
    service: str | None
    environment: str | None
    alertCount: int
    createdAt: str
    updatedAt: str
    resolvedAt: str | None


class AlertRead(BaseModel):
    id: str
    provider: str
    fingerprint: str
    status: str = Field(
        description=(
            "firing, resolved or acknowledged; change for a change (a deploy) that a trigger "
            "recorded on the incident"
        )
    )
    title: str
    description: str | None
    severity: str
    service: str | None
    environment: str | None
    labels: dict[str, str]
    url: str | None
    receivedAt: str


class IncidentDetail(IncidentRead):
    alerts: list[AlertRead] = Field(description="its most recent alerts, oldest first")
    events: list[dict[str, Any]] = Field(
        description="its events in log order (the envelopes every reader sees)"
    )


class IncidentPage(BaseModel):
    items: list[IncidentRead]
    cursor: str | None
    count: int

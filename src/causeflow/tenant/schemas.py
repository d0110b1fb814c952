"""Wire models of the tenant endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from causeflow.api.fields import NO_NUL
from causeflow.ratelimit.limits import BY_WIRE

Plan = Literal["starter", "pro", "business", "enterprise"]


NAME_MAX_LENGTH = 200  # a tenant's name: 1 to this many characters, by the API and the CLI


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantCreate(_Strict):
    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NO_NUL)
    plan: Plan | None = None


class InboundSecrets(_Strict):
    sentry: str | None = Field(default=None, max_length=500)
    pagerduty: str | None = Field(default=None, max_length=500)
    grafana: str | None = Field(default=None, max_length=500)


class InboundUpdate(_Strict):
    requireSignature: bool | None = None
    secrets: InboundSecrets | None = None
    snsTopicArns: list[str] | None = Field(default=None, max_length=100)


class TenantUpdate(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX_LENGTH, pattern=NO_NUL)
    inbound: InboundUpdate | None = None


class TenantPlanUpdate(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX_LENGTH, pattern=NO_NUL)
    plan: Plan | None = None


class InboundRead(BaseModel):
    requireSignature: bool
    snsTopicArns: list[str]
    secretsConfigured: list[str]


class TenantRead(BaseModel):
    id: str
    name: str
    plan: str
    inbound: InboundRead
    createdAt: str
    updatedAt: str


class TenantCreated(TenantRead):
    apiKey: str = Field(description="an API key with every scope; shown only in this response")


class TenantPage(BaseModel):
    items: list[TenantRead]
    cursor: str | None
    count: int


def _override(wire: str) -> Any:
    spec = BY_WIRE[wire]
    return Field(default=None, ge=1, le=spec.maximum, strict=True, description=spec.unit)


class LimitsUpdate(_Strict):
    """Overrides to set, integers from 1 to each field's maximum: a field left out stays as it
    is, null resets it to the default."""

    requestsPerMinute: int | None = _override("requestsPerMinute")
    publishPerMinute: int | None = _override("publishPerMinute")
    ingestPerMinute: int | None = _override("ingestPerMinute")
    maxSubscriptions: int | None = _override("maxSubscriptions")
    maxStreams: int | None = _override("maxStreams")
    eventRetentionDays: int | None = _override("eventRetentionDays")
    deliveryRetentionDays: int | None = _override("deliveryRetentionDays")


class LimitFigures(BaseModel):
    requestsPerMinute: int
    publishPerMinute: int
    ingestPerMinute: int
    maxSubscriptions: int
    maxStreams: int
    eventRetentionDays: int | float
    deliveryRetentionDays: int | float


class LimitOverrides(BaseModel):
    requestsPerMinute: int | None
    publishPerMinute: int | None
    ingestPerMinute: int | None
    maxSubscriptions: int | None
    maxStreams: int | None
    eventRetentionDays: int | None
    deliveryRetentionDays: int | None


class TenantLimitsRead(BaseModel):
    tenantId: str
    plan: str
    overrides: LimitOverrides = Field(description="what a platform admin set; null: the default")
    effective: LimitFigures = Field(description="the figures in force (0 for a rate: no limit)")

"""Wire models of the tenant endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Plan = Literal["starter", "pro", "business", "enterprise"]


NAME_MAX_LENGTH = 200  # a tenant's name: 1 to this many characters, by the API and the CLI


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantCreate(_Strict):
    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH)
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
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX_LENGTH)
    inbound: InboundUpdate | None = None


class TenantPlanUpdate(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX_LENGTH)
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

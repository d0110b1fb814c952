"""Wire models of the trigger endpoints (config is write-only: reads show its key names)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from causeflow.integration.schemas import PROVIDER_PATTERN
from causeflow.remediation.schemas import NO_NUL

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class TriggerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    slug: str = Field(pattern=SLUG_PATTERN, description="unique within the tenant, URL-safe")
    provider: str = Field(pattern=PROVIDER_PATTERN, description="the tool whose events fire it")
    action: str = Field(
        min_length=1, max_length=200, pattern=NO_NUL, description="what it does when it fires"
    )
    config: dict[str, Any] | None = Field(
        default=None,
        max_length=100,
        description="settings and credentials; stored encrypted, never shown again",
    )


class TriggerRead(BaseModel):
    id: str
    slug: str
    provider: str
    action: str
    configKeys: list[str] = Field(description="the names of the config's fields (values hidden)")
    createdAt: str


class TriggerPage(BaseModel):
    items: list[TriggerRead]
    cursor: str | None
    count: int

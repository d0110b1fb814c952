"""Wire models of the integration endpoints (config is write-only: reads show its key names)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from causeflow.remediation.schemas import NO_NUL

PROVIDER_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    provider: str = Field(pattern=PROVIDER_PATTERN, description="e.g. datadog, slack, github")
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)
    config: dict[str, Any] | None = Field(
        default=None,
        max_length=100,
        description="settings and credentials; stored encrypted, never shown again",
    )


class IntegrationRead(BaseModel):
    id: str
    provider: str
    name: str | None
    status: Literal["connected", "disconnected"]
    configKeys: list[str] = Field(description="the names of the config's fields (values hidden)")
    connectedBy: str | None
    disconnectedBy: str | None
    createdAt: str
    updatedAt: str


class IntegrationPage(BaseModel):
    items: list[IntegrationRead]
    cursor: str | None
    count: int

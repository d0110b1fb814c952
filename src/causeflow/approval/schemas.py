"""Wire models of the approval endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from causeflow.remediation.schemas import NO_NUL


class ApprovalRespond(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    decision: Literal["approved", "rejected"]
    notes: str | None = Field(default=None, min_length=1, max_length=2000, pattern=NO_NUL)


class ApprovalRead(BaseModel):
    id: str
    incidentId: str
    remediationId: str
    title: str
    status: str = Field(description="pending, approved, rejected or expired")
    expiresAt: str
    decidedBy: str | None
    notes: str | None
    createdAt: str
    decidedAt: str | None


class ApprovalPage(BaseModel):
    items: list[ApprovalRead]
    cursor: str | None
    count: int

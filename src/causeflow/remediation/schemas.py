"""Wire models of the remediation endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# PostgreSQL TEXT cannot hold NUL characters; they are refused up front rather than failing
# at insert time.
NO_NUL = r"^[^\x00]*$"
Step = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RemediationCreate(_Strict):
    title: str = Field(min_length=1, max_length=500, pattern=NO_NUL)
    steps: list[Step] = Field(min_length=1, max_length=100)
    requiresApproval: bool


class RemediationReject(_Strict):
    reason: str = Field(min_length=1, max_length=2000, pattern=NO_NUL)


class RemediationExecuted(_Strict):
    outcome: Literal["success", "failure"]
    durationMs: int = Field(ge=0, le=2_147_483_647)  # the column is a 32-bit integer


class ApprovalSummary(BaseModel):
    id: str
    status: str
    expiresAt: str
    decidedBy: str | None
    decidedAt: str | None


class RemediationRead(BaseModel):
    id: str
    incidentId: str
    title: str
    steps: list[str]
    requiresApproval: bool
    status: str
    decidedBy: str | None
    reason: str | None
    outcome: str | None
    durationMs: int | None
    approval: ApprovalSummary | None
    createdAt: str
    updatedAt: str


class RemediationPage(BaseModel):
    items: list[RemediationRead]
    cursor: str | None
    count: int

"""Incident endpoints: `/v1/incidents` (create by hand, list, read with alerts and events, move)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from causeflow.api.deps import Ctx, Operator, Reader, async_dependency, tenant_of
from causeflow.api.pagination import PageParams, page, page_params
from causeflow.api.query import comma_list
from causeflow.api.routing import JsonRoute
from causeflow.clock import parse_rfc3339
from causeflow.errors import ValidationFailed
from causeflow.incident import service
from causeflow.incident.lifecycle import STATUSES
from causeflow.incident.schemas import (
    IncidentCreate,
    IncidentDetail,
    IncidentPage,
    IncidentRead,
    IncidentUpdate,
    SortOrder,
)
from causeflow_sdk.models.common import SEVERITIES

router = APIRouter(tags=["incidents"], route_class=JsonRoute)


def _choices(value: str | None, allowed: tuple[str, ...], name: str) -> frozenset[str] | None:
    chosen = comma_list(value)
    if chosen is None:
        return None
    unknown = sorted(chosen - set(allowed))
    if unknown:
        raise ValidationFailed.at(
            f"query.{name}", f"unknown {name} {', '.join(unknown)}; one of {', '.join(allowed)}"
        )
    return chosen


class IncidentFilters:
    def __init__(
        self,
        status: Annotated[
            str | None, Query(max_length=200, description="comma-separated statuses")
        ] = None,
        severity: Annotated[
            str | None, Query(max_length=200, description="comma-separated severities")
        ] = None,
        sort: Annotated[SortOrder, Query(description="newest first by default")] = "-createdAt",
    ) -> None:
        self.statuses = _choices(status, STATUSES, "status")
        self.severities = _choices(severity, SEVERITIES, "severity")
        self.newest_first = sort == "-createdAt"


incident_filters = async_dependency(IncidentFilters)


@router.post("/v1/incidents", status_code=201, response_model=IncidentRead)
async def create_incident(body: IncidentCreate, ctx: Ctx, principal: Operator) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        row = service.new_incident_row(
            tenant_of(principal),
            title=body.title,
            severity=body.severity,
            source="manual",
            description=body.description,
            service=body.service,
            environment=body.environment,
            now_ms=ctx.clock.now_ms(),
        )
        return await service.create_incident(tx, row)


@router.get("/v1/incidents", response_model=IncidentPage)
async def list_incidents(
    ctx: Ctx,
    principal: Reader,
    filters: IncidentFilters = Depends(incident_filters),
    params: PageParams = Depends(page_params),
) -> dict[str, Any]:
    after = params.after_key(int, str)
    async with ctx.db.read() as conn:
        rows = await service.list_incidents(
            conn,
            tenant_of(principal),
            statuses=filters.statuses,
            severities=filters.severities,
            newest_first=filters.newest_first,
            after=(after[0], after[1]) if after else None,
            limit=params.limit + 1,
        )
    return page(rows, params.limit, lambda r: [parse_rfc3339(r["createdAt"]), r["id"]])


@router.get("/v1/incidents/{incident_id}", response_model=IncidentDetail)
async def get_incident(incident_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return await service.get_incident_detail(conn, tenant_of(principal), incident_id)


@router.patch("/v1/incidents/{incident_id}", response_model=IncidentRead)
async def update_incident(
    incident_id: str, body: IncidentUpdate, ctx: Ctx, principal: Operator
) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await service.move_incident(
            tx, tenant_of(principal), incident_id, body.status, ctx.clock.now_ms()
        )

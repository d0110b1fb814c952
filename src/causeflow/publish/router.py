"""Event endpoints: the catalog, publishing, and reading the log (plus the polling fallback)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from causeflow.api.deps import Ctx, Publisher, Reader, async_dependency, tenant_of
from causeflow.api.pagination import PageParams, encode_cursor, page_params
from causeflow.api.routing import JsonRoute
from causeflow.clock import parse_rfc3339
from causeflow.errors import CursorExpired, ValidationFailed
from causeflow.event import log
from causeflow.publish.service import prepare, publish
from causeflow_sdk.models import CATALOG

router = APIRouter(tags=["events"], route_class=JsonRoute)


class EventPublish(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1, max_length=100)
    data: dict[str, Any]
    test: bool = False


class EventFilters:
    def __init__(
        self,
        event: Annotated[
            str | None, Query(max_length=2000, description="comma-separated types")
        ] = None,
        incidentId: Annotated[str | None, Query(max_length=64)] = None,  # noqa: N803
        since: Annotated[str | None, Query(max_length=64, description="RFC 3339 time")] = None,
        after: Annotated[str | None, Query(max_length=64, description="an event id")] = None,
    ) -> None:
        self.types = frozenset(t.strip() for t in event.split(",") if t.strip()) if event else None
        self.incident_id = incidentId
        try:
            self.since_ms = parse_rfc3339(since) if since else None
        except ValueError as exc:
            raise ValidationFailed.at("query.since", "not an RFC 3339 time") from exc
        self.after = after


event_filters = async_dependency(EventFilters)


def _json_page(envelopes: list[str], cursor: str | None) -> Response:
    # The stored envelope text goes out as is: byte-for-byte what the stream and webhooks carry.
    body = (
        '{"items":['
        + ",".join(envelopes)
        + '],"cursor":'
        + (f'"{cursor}"' if cursor else "null")
        + f',"count":{len(envelopes)}}}'
    )
    return Response(body, media_type="application/json")


async def read_log(ctx: Any, tenant_id: str, filters: EventFilters, params: PageParams) -> Response:
    after_pos = 0
    cursor = params.after_key(int)
    async with ctx.db.read() as conn:
        if cursor is not None:
            after_pos = int(cursor[0])
        elif filters.after:
            found = await log.find_event(conn, tenant_id, filters.after)
            if found is None:
                raise CursorExpired(
                    "that event is unknown or no longer retained; refetch state",
                    details={"after": filters.after},
                )
            after_pos = found.position
        rows = await log.read_after(
            conn,
            tenant_id,
            after_pos,
            limit=params.limit + 1,
            types=filters.types,
            incident_id=filters.incident_id,
            since_ms=filters.since_ms,
        )
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    next_cursor = encode_cursor([rows[-1].position]) if more and rows else None
    return _json_page([r.envelope for r in rows], next_cursor)


@router.get("/v1/event-types")
async def list_event_types() -> dict[str, Any]:
    items = [t.describe() for t in CATALOG.values()]
    return {"items": items, "cursor": None, "count": len(items)}


@router.get("/v1/event-types/{name}")
async def get_event_type(name: str) -> dict[str, Any]:
    from causeflow.errors import NotFound

    if name not in CATALOG:
        raise NotFound("no such event type")
    return CATALOG[name].describe()


@router.post("/v1/events", status_code=201)
async def post_event(body: EventPublish, ctx: Ctx, principal: Publisher) -> Response:
    item = prepare(
        principal, event_type=body.event, data=body.data, test=body.test, now_ms=ctx.clock.now_ms()
    )
    stored = await publish(ctx, item)
    return Response(stored.envelope, status_code=201, media_type="application/json")


@router.get("/v1/events")
async def get_events(
    ctx: Ctx,
    principal: Reader,
    filters: EventFilters = Depends(event_filters),
    params: PageParams = Depends(page_params),
) -> Response:
    return await read_log(ctx, tenant_of(principal), filters, params)


@router.get("/v1/notifications")
async def poll_notifications(
    ctx: Ctx,
    principal: Reader,
    filters: EventFilters = Depends(event_filters),
    params: PageParams = Depends(page_params),
) -> Response:
    """The polling fallback for clients that cannot hold a stream: same as GET /v1/events."""
    return await read_log(ctx, tenant_of(principal), filters, params)

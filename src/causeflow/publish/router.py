"""Event endpoints: the catalog, publishing, and reading the log (plus the polling fallback)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as ModelInvalid

from causeflow.api.deps import Ctx, Publisher, Reader, admits, async_dependency, tenant_of
from causeflow.api.errors import failure_of
from causeflow.api.gateway import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    read_body,
    replaying,
    send_error,
)
from causeflow.api.pagination import PageParams, encode_cursor, page_params
from causeflow.api.query import comma_list, query_time
from causeflow.api.routing import JsonRoute
from causeflow.auth.principal import Action, Principal
from causeflow.context import AppContext
from causeflow.db.conn import Conn
from causeflow.errors import CursorExpired, RateLimited, ValidationFailed
from causeflow.event import log
from causeflow.jsonutil import JsonRefused, json_body, loads_body
from causeflow.publish.service import MAX_BATCH_EVENTS, prepare, prepare_all, publish, publish_all
from causeflow_sdk.models import CATALOG

router = APIRouter(tags=["events"], route_class=JsonRoute)


class EventPublish(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1, max_length=100)
    data: dict[str, Any]
    test: bool = False


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventPublish] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class EventFilters:
    def __init__(
        self,
        event: Annotated[
            str | None, Query(max_length=2000, description="comma-separated types")
        ] = None,
        incidentId: Annotated[str | None, Query(max_length=64)] = None,  # noqa: N803
        since: Annotated[str | None, Query(max_length=64, description="RFC 3339 time")] = None,
        after: Annotated[str | None, Query(max_length=64, description="an event id")] = None,
        order: Annotated[
            Literal["oldest", "newest"],
            Query(description="log order, oldest first (the default), or newest first"),
        ] = "oldest",
    ) -> None:
        self.types = comma_list(event)
        self.incident_id = incidentId
        self.since_ms = query_time("since", since)
        self.after = after
        self.newest = order == "newest"


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
    return Response(json_body(body), media_type="application/json")


# The cursor of a newest-first page says so, so that it is never read as an oldest-first one.
NEWEST = "newest"


async def _position_of(conn: Conn, tenant_id: str, event_id: str) -> int:
    found = await log.find_event(conn, tenant_id, event_id)
    if found is None:
        raise CursorExpired(
            "that event is unknown or no longer retained; refetch state",
            details={"after": event_id},
        )
    return found.position


async def _rows(
    conn: Conn, tenant_id: str, filters: EventFilters, limit: int, cursor: list[Any] | None
) -> list[log.StoredEvent]:
    """A page's rows (and one more): after the cursor, else after `after`; newest first,
    below the cursor and above `after`."""
    after_pos = 0
    if filters.after and (filters.newest or cursor is None):
        after_pos = await _position_of(conn, tenant_id, filters.after)
    if filters.newest:
        return await log.read_before(
            conn,
            tenant_id,
            int(cursor[0]) if cursor else None,
            after_position=after_pos,
            limit=limit,
            types=filters.types,
            incident_id=filters.incident_id,
            since_ms=filters.since_ms,
        )
    return await log.read_after(
        conn,
        tenant_id,
        int(cursor[0]) if cursor else after_pos,
        limit=limit,
        types=filters.types,
        incident_id=filters.incident_id,
        since_ms=filters.since_ms,
    )


async def read_log(
    ctx: AppContext, tenant_id: str, filters: EventFilters, params: PageParams
) -> Response:
    cursor = params.after_key(int, str) if filters.newest else params.after_key(int)
    if cursor is not None and filters.newest and cursor[1] != NEWEST:
        raise ValidationFailed.at("cursor", "invalid cursor")
    async with ctx.db.read() as conn:
        rows = await _rows(conn, tenant_id, filters, params.limit + 1, cursor)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    next_cursor = None
    if more and rows:
        last = rows[-1].position
        next_cursor = encode_cursor([last, NEWEST] if filters.newest else [last])
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


async def spend_publish_budget(ctx: AppContext, tenant_id: str, count: int) -> None:
    """Spend `count` events of the tenant's publish budget (its effective `publishPerMinute`,
    fixed one-minute windows, 0 = none), all or none; RateLimited when they do not fit."""
    limit = (await ctx.tenant_limits(tenant_id)).publish_per_minute
    now_ms = ctx.clock.now_ms()
    decision = ctx.limiter.hit(f"publish:{tenant_id}", limit, now_ms, count)
    if decision.allowed:
        return
    raise RateLimited(
        f"the publish rate limit of {limit} events per minute is exceeded",
        details={"limit": limit, "remaining": decision.remaining, "requested": count},
        headers={"Retry-After": str(decision.retry_after(now_ms))},
    )


@router.post(
    "/v1/events",
    status_code=201,
    responses={429: {"description": "over the request budget or the tenant's publish rate"}},
)
async def post_event(body: EventPublish, ctx: Ctx, principal: Publisher) -> Response:
    # Through the gateway, the plain request is answered by `answer_publish` instead.
    envelope = await publish_one(ctx, principal, body)
    return Response(envelope, status_code=201, media_type="application/json")


async def publish_one(ctx: AppContext, principal: Principal, body: EventPublish) -> bytes:
    """The checked `POST /v1/events` of an admitted caller: its 201 body, once committed."""
    item = prepare(
        principal, event_type=body.event, data=body.data, test=body.test, now_ms=ctx.clock.now_ms()
    )
    await spend_publish_budget(ctx, tenant_of(principal), 1)
    stored = await publish(ctx, item)
    return json_body(stored.envelope)


# The content types of a body `answer_publish` reads itself (other JSON spellings, and bodies
# sent as something else, get the framework's own handling).
_JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})


async def answer_publish(
    ctx: AppContext, scope: Scope, receive: Receive, send: Send, app: ASGIApp
) -> None:
    """`POST /v1/events` as plain ASGI, called by the gateway once the request's credential is
    resolved and it is within its budget (`api.gateway.FastRoute`).

    It answers the plain request itself, as `post_event` would: a caller the route admits
    (`Publisher`), no `Idempotency-Key`, a JSON body that `EventPublish` accepts. Every other
    request goes on to `app` with the body read here, to be answered by the route with its
    dependencies (401, 403, the key's claim) and the framework's validation errors; so does a
    request whose client went away before the end of its body (the route answers 400).
    """
    body, whole = await read_body(receive)
    principal = scope["state"].get("principal")
    request = _plain_publish(scope, principal, body) if whole else None
    if request is None:
        await app(scope, replaying(body, receive, whole=whole), send)
        return
    try:
        answer = await publish_one(ctx, principal, request)
    except Exception as exc:  # noqa: BLE001  # the error shape of every route
        await send_error(send, failure_of(exc))
        return
    # What `post_event`'s Response sends.
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-length", str(len(answer)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def _plain_publish(scope: Scope, principal: Principal | None, body: bytes) -> EventPublish | None:
    """The request's `EventPublish` if `answer_publish` answers it itself, else None."""
    if not admits(principal, Action.PUBLISH):
        return None
    content_type: bytes | None = None
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"idempotency-key":
            return None
        if name == b"content-type" and content_type is None:
            content_type = value.lower()
    if content_type not in _JSON_TYPES:
        return None
    try:
        return EventPublish.model_validate(loads_body(body))
    except (JsonRefused, ModelInvalid):
        return None


@router.post(
    "/v1/events/batch",
    description="Up to 100 events, checked like `POST /v1/events` and stored in one "
    "transaction, in order: all of them, or none when one is refused. Each event counts "
    "against the tenant's publish rate.",
    responses={429: {"description": "over the request budget or the tenant's publish rate"}},
)
async def post_event_batch(body: EventBatch, ctx: Ctx, principal: Publisher) -> Response:
    items = prepare_all(
        principal,
        ((e.event, e.data, e.test) for e in body.events),
        now_ms=ctx.clock.now_ms(),
    )
    await spend_publish_budget(ctx, tenant_of(principal), len(items))
    stored = await publish_all(ctx, items)
    # The stored envelopes go out as they are, like the single publish's answer.
    results = ",".join(
        f'{{"index":{i},"status":201,"event":{event.envelope}}}' for i, event in enumerate(stored)
    )
    return Response(json_body('{"items":[' + results + "]}"), media_type="application/json")


# One handler, two documented routes: `GET /v1/notifications` is the polling fallback for
# clients that cannot hold a stream and answers exactly what `GET /v1/events` does. (A comment
# rather than a docstring, which would become the description of both operations.)
@router.get("/v1/events", name="get_events")
@router.get(
    "/v1/notifications",
    name="poll_notifications",
    description="The polling fallback for clients that cannot hold a stream: same as "
    "GET /v1/events.",
)
async def read_events(
    ctx: Ctx,
    principal: Reader,
    filters: EventFilters = Depends(event_filters),
    params: PageParams = Depends(page_params),
) -> Response:
    return await read_log(ctx, tenant_of(principal), filters, params)

"""`GET /v1/notifications/stream` (Server-Sent Events) and its stream tickets.

Auth is settled before the stream starts: a JWT (admin/member), an API key with `events:read`
(or `admin`), a dashboard session, or `?token=` with a ticket from
`POST /v1/notifications/stream-tickets` (for browsers' `EventSource`, which cannot send
headers). The stream itself is `session.EventStream`, fed by the process's `StreamHub`.
"""

from __future__ import annotations

from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel

from causeflow.api.deps import Ctx, require
from causeflow.api.routing import JsonRoute
from causeflow.auth import standing
from causeflow.auth.principal import Action, Principal, allows
from causeflow.clock import ms_to_rfc3339
from causeflow.context import AppContext
from causeflow.errors import Forbidden, Unauthorized, ValidationFailed
from causeflow.stream.connection import Connection
from causeflow.stream.framing import parse_types
from causeflow.stream.hub import StreamHub, running_hub
from causeflow.stream.session import EventStream
from causeflow_sdk.models import CATALOG_TYPES, OPERATIONAL_TYPES

router = APIRouter(tags=["stream"], route_class=JsonRoute)

KNOWN_TYPES = frozenset(CATALOG_TYPES) | frozenset(OPERATIONAL_TYPES)
# The longest value accepted for each parameter of the stream (query, and the header in lower
# case). A longer one is answered 422 by the route's validation.
MAX_LENGTHS = {"events": 2000, "incidentId": 64, "lastEventId": 64, "last-event-id": 64}


class StreamTicket(BaseModel):
    ticket: str
    expiresAt: str  # noqa: N815 - the wire's field name (docs/reference.md §4.1)


async def stream_principal(request: Request, ctx: Ctx) -> Principal:
    return await admitted_streamer(ctx, request.scope.get("state", {}).get("principal"))


async def admitted_streamer(ctx: AppContext, principal: Principal | None) -> Principal:
    """The gateway's principal if it may open a stream now, else Unauthorized or Forbidden."""
    if principal is None:
        raise Unauthorized(
            "authentication required: a Bearer token, an API key or ?token=<stream ticket>"
        )
    if not allows(principal, Action.STREAM):
        raise Forbidden("this credential may not read the event stream")
    # Read from the store, not a cache: a ticket whose key was revoked or whose dashboard
    # session was signed out (in any process) opens nothing, and replays nothing.
    ended = await standing.ended(ctx.db, principal, ctx.clock.now_ms())
    if ended is not None:
        raise Unauthorized(_ENDED_MESSAGES.get(ended, ended), code=_ENDED_CODES.get(ended))
    return principal


_ENDED_CODES = {
    standing.EXPIRED: "token_expired",
    standing.REVOKED: "credential_revoked",
    standing.SIGNED_OUT: "session_ended",
}
_ENDED_MESSAGES = {
    standing.EXPIRED: "the credential has expired",
    standing.REVOKED: "the API key behind this credential has been revoked",
    standing.SIGNED_OUT: "the dashboard session behind this credential has ended",
}


Streamer = Annotated[Principal, Depends(stream_principal)]


@router.post("/v1/notifications/stream-tickets", status_code=201, response_model=StreamTicket)
async def create_stream_ticket(
    ctx: Ctx, principal: Annotated[Principal, require(Action.STREAM)]
) -> StreamTicket:
    """A short-lived credential for `?token=` on the stream, reusable for reconnects."""
    ticket = ctx.tokens.mint_ticket(
        principal, now=ctx.clock.now(), ttl=ctx.settings.sse_ticket_ttl_seconds
    )
    exp = jwt.decode(ticket, options={"verify_signature": False})["exp"]
    return StreamTicket(ticket=ticket, expiresAt=ms_to_rfc3339(int(exp) * 1000))


@router.get(
    "/v1/notifications/stream",
    status_code=200,
    response_class=EventStream,
    responses={
        200: {
            "description": "Server-Sent Events: `id`, `event`, `data` (the event envelope)",
            "content": {"text/event-stream": {}},
        },
        429: {"description": "too_many_streams: the tenant's stream cap is reached"},
    },
)
async def open_stream(
    ctx: Ctx,
    principal: Streamer,
    events: Annotated[
        str | None,
        Query(max_length=MAX_LENGTHS["events"], description="comma-separated event types"),
    ] = None,
    incidentId: Annotated[  # noqa: N803
        str | None, Query(max_length=MAX_LENGTHS["incidentId"])
    ] = None,
    lastEventId: Annotated[  # noqa: N803
        str | None,
        Query(max_length=MAX_LENGTHS["lastEventId"], description="resume after this event id"),
    ] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=MAX_LENGTHS["last-event-id"])
    ] = None,
    token: Annotated[str | None, Query(description="a stream ticket")] = None,
) -> EventStream:
    # Served by `stream.front.StreamFront` under the application, with the functions below;
    # declared here for the API's description (and an application built without that layer).
    hub, conn = await open_connection(ctx, principal, events, incidentId)
    return EventStream(hub, conn, resume_from(last_event_id, lastEventId))


async def open_connection(
    ctx: AppContext, principal: Principal, events: str | None, incident_id: str | None
) -> tuple[StreamHub, Connection]:
    """Check the filters and register the stream with the hub (under the tenant's cap)."""
    types = parse_types(events)
    for name in sorted(types or ()):
        if name not in KNOWN_TYPES:
            raise ValidationFailed.at("query.events", f"unknown event type {name!r}")
    hub = running_hub(ctx)
    cap = None
    if principal.tenant_id is not None:
        cap = (await ctx.tenant_limits(principal.tenant_id)).max_streams
    return hub, hub.open(principal, types, incident_id or None, cap)


def resume_from(header: str | None, query: str | None) -> str | None:
    """The event id to resume after: the `Last-Event-ID` header's, else `?lastEventId=`."""
    return (header or query or "").strip() or None

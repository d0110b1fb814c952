"""`GET /v1/notifications/stream` answered under the gateway, without the framework's stack.

A stream's request stays open for the stream's life, and whatever the request passed through
stays in memory with it: FastAPI's routing, dependency solving and exit stacks held about
12 KB a stream, more than the stream's own state many times over (docs/performance.md, "Where
a stream's memory goes"). `StreamFront` sits directly inside `api/gateway.py`, so the access
log (request id, one line when the stream ends), the credential's resolution, the tenant's
budget and the rate-limit headers are the same as on every route, and takes the stream's
requests before the rest of the stack. It checks and opens them with the route's own
functions (`stream/router.py` `admitted_streamer`, `open_connection`, `resume_from`) and
answers a refusal with the application's error shape (`api/errors.py`); the stream itself is
`stream/session.py` `serve`, as under the route.

Anything it does not take goes on to the application: other paths and methods, and a request
whose parameters the route's validation would refuse (a value over its length), so that the
FastAPI route answers those 422s itself, in its own words. The route stays declared for the
API's description and answers the same way (tests/stream/test_front.py).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers, QueryParams

from causeflow.api.errors import error_response, failure_of
from causeflow.api.gateway import STREAM_PATH, ASGIApp, Receive, Scope, Send
from causeflow.context import AppContext
from causeflow.errors import Unavailable
from causeflow.stream.router import MAX_LENGTHS, admitted_streamer, open_connection, resume_from
from causeflow.stream.session import serve

# (events, incidentId, lastEventId query, Last-Event-ID header)
Params = tuple[str | None, str | None, str | None, str | None]


class StreamFront:
    """Pure ASGI: the stream's requests are served here, the rest go on to `app`."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self._state = state  # the application's state; `ctx` is set by the lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != STREAM_PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        params = stream_params(scope)
        if params is None:  # the route's validation answers it (422)
            await self.app(scope, receive, send)
            return
        await open_and_serve(self._state.ctx, scope, receive, send, params)


def stream_params(scope: Scope) -> Params | None:
    """The stream's parameters read as the route reads them (the last of a repeated query
    parameter, the first of a repeated header); None if the route would refuse one."""
    query = QueryParams(scope.get("query_string", b""))
    events, incident_id, last_id = (
        query.get("events"),
        query.get("incidentId"),
        query.get("lastEventId"),
    )
    header = Headers(scope=scope).get("last-event-id")
    for value, name in (
        (events, "events"),
        (incident_id, "incidentId"),
        (last_id, "lastEventId"),
        (header, "last-event-id"),
    ):
        if value is not None and len(value) > MAX_LENGTHS[name]:
            return None
    return events, incident_id, last_id, header


async def open_and_serve(
    ctx: AppContext, scope: Scope, receive: Receive, send: Send, params: Params
) -> None:
    """Admit the caller, register the stream and serve it; a refusal in the route's shape."""
    events, incident_id, last_id, header = params
    try:
        principal = await admitted_streamer(ctx, scope.get("state", {}).get("principal"))
        hub, conn = await open_connection(ctx, principal, events, incident_id)
    except Exception as exc:  # noqa: BLE001  # answered like the route's exception handlers
        await answer_failure(scope, receive, send, exc)
        return
    try:
        await serve(hub, conn, resume_from(header, last_id), scope, receive, send)
    except Unavailable as exc:  # raised before the head goes out
        await answer_failure(scope, receive, send, exc)


async def answer_failure(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """The response the application's exception handlers give for `exc` (`api/errors.py`)."""
    err = failure_of(exc)
    response = error_response(err.status, err.code, err.message, err.details, err.headers)
    await response(scope, receive, send)

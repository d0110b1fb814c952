"""One stream from its first bytes to its end: preamble, resume, then live until it closes.

The connection is registered with the hub before anything is read; the response head and the
preamble go out as soon as the tenant's feed knows its position, and whatever is committed
after the head reaches the client. A resume replays the log from storage up to the feed's
position before joining it, re-checking the position with no await in between, so the seam
has no gap and no duplicate however fast events are being published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

from starlette.responses import Response

from causeflow.errors import Unavailable
from causeflow.event import log
from causeflow.stream.connection import (
    Connection,
    QueueSink,
    Receive,
    Send,
    Sink,
    TransportSink,
    uvicorn_transport,
)
from causeflow.stream.framing import (
    RESET_CURSOR_EXPIRED,
    RESET_TOO_FAR_BEHIND,
    RESPONSE_HEADERS,
    event_frame,
    preamble,
    reset_frame,
)
from causeflow.stream.hub import StreamHub, TenantFeed

logger = logging.getLogger("causeflow.stream")

REPLAY_PAGE = 500
READY_TIMEOUT_SECONDS = 10.0


class EventStream(Response):
    """The streaming response of `GET /v1/notifications/stream` for one registered connection,
    when the FastAPI route answers it (`stream.front.StreamFront` calls `serve` directly)."""

    media_type = "text/event-stream"

    def __init__(self, hub: StreamHub, conn: Connection, last_event_id: str | None) -> None:
        # Starlette's Response holds headers and a body we do not use: the head is sent below.
        super().__init__(status_code=200)
        self.hub = hub
        self.conn = conn
        self.last_event_id = last_event_id

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:  # type: ignore[override]
        await serve(self.hub, self.conn, self.last_event_id, scope, receive, send)


async def serve(
    hub: StreamHub,
    conn: Connection,
    last_event_id: str | None,
    scope: MutableMapping[str, Any],
    receive: Receive,
    send: Send,
) -> None:
    """Serve one registered connection to its end: head, preamble, resume, live.

    Unavailable (nothing sent yet) when the tenant's feed cannot learn its position in time.
    """
    try:
        feed = hub.feed_of(conn)
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await feed.ready.wait()  # the tenant's feed knows its position
        except TimeoutError:
            raise Unavailable("the event log cannot be read right now; retry") from None
        # The feed's position is read after the head has gone out, with no await until the
        # stream joins the feed: whatever is committed once the client has the head reaches it.
        await send(
            {"type": "http.response.start", "status": 200, "headers": list(RESPONSE_HEADERS)}
        )
        limit = hub.ctx.settings.sse_buffer_events
        transport = uvicorn_transport(scope)
        sink: Sink = (
            TransportSink(transport, receive, limit)
            if transport is not None
            else QueueSink(send, receive, limit)
        )
        conn.sink = sink
        if conn.closed is not None:  # ended before it began (the server is stopping)
            await sink.send_now(preamble(hub.ctx.settings.sse_retry_ms))
            sink.end(conn.closed)
        else:
            try:
                await _begin(hub, conn, last_event_id, feed, sink)
            except Exception as exc:  # the database went away mid-resume: let it reconnect
                logger.warning("stream for %s could not resume: %s", conn.tenant_id, exc)
                sink.end("temporarily unavailable; reconnect")
            if conn.closed is not None:
                sink.end(conn.closed)
        await sink.run()
    finally:
        hub.release(conn)


async def _begin(
    hub: StreamHub, conn: Connection, last_event_id: str | None, feed: TenantFeed, sink: Sink
) -> None:
    settings = hub.ctx.settings
    first = preamble(settings.sse_retry_ms)
    if not last_event_id:
        # Live from the feed's position, then the preamble: a direct sink writes it before
        # its first await, a queued one sends it before the queue; either way it is first.
        feed.go_live(conn, feed.position)
        await sink.send_now(first)
        return
    # Every event after `start` reaches this stream, replayed or live, whatever follows.
    start = feed.position
    await sink.send_now(first)
    async with hub.ctx.db.read() as db:
        found = await log.find_event(db, conn.tenant_id, last_event_id)
        reset = None
        if found is None:
            reset = RESET_CURSOR_EXPIRED
        elif (
            await log.count_after(db, conn.tenant_id, found.position, settings.sse_max_replay)
            > settings.sse_max_replay
        ):
            reset = RESET_TOO_FAR_BEHIND
    if reset is not None or found is None:
        await sink.send_now(reset_frame(reset or RESET_CURSOR_EXPIRED, last_event_id))
        await _replay(hub, conn, feed, sink, start)
        return
    await _replay(hub, conn, feed, sink, found.position)


async def _replay(
    hub: StreamHub, conn: Connection, feed: TenantFeed, sink: Sink, cursor: int
) -> None:
    """Send the log after `cursor` from storage, then join the feed without a seam."""
    db = hub.ctx.db
    while True:
        target = feed.position
        while cursor < target:
            async with db.read() as rdb:
                rows = await log.read_after(
                    rdb,
                    conn.tenant_id,
                    cursor,
                    limit=REPLAY_PAGE,
                    types=conn.types,
                    incident_id=conn.incident_id,
                    until_position=target,
                )
            if rows:
                await sink.send_now(b"".join(event_frame(e.id, e.type, e.envelope) for e in rows))
            # Every event up to `target` had been read by the feed, hence committed, before
            # this query started: a short page means nothing matching is left up to it.
            cursor = rows[-1].position if len(rows) == REPLAY_PAGE else target
            if conn.closed is not None or sink.gone:
                return
        if feed.position == target:  # no await since the check above: join now
            feed.go_live(conn, cursor)
            return

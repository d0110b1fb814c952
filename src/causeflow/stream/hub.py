"""The stream hub: one log reader per process per active tenant, fanning out to connections.

A tenant's feed reads the log after its own position when the broker says the tenant has
something new (a commit here, or NOTIFY from another process) or when its slow poll fires,
encodes each event once and hands the same bytes to every live connection whose filters
match, in position order. A ticker sends the keepalive and ends streams whose credential has
expired or been revoked. `shutdown()` ends every stream so clients reconnect elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from causeflow.auth import standing
from causeflow.auth.principal import Principal
from causeflow.context import AppContext
from causeflow.errors import RateLimited
from causeflow.event import log
from causeflow.event.log import StoredEvent
from causeflow.metrics import SSE_CONNECTIONS
from causeflow.stream.connection import Connection
from causeflow.stream.framing import PING_FRAME, Frame, event_frame, matches
from causeflow.tracing import spans

logger = logging.getLogger("causeflow.stream")

READ_PAGE = 500
# Socket writes between two yields to the event loop while fanning a page out.
WRITES_PER_SLICE = 100
# After a shutdown began, streams that have not closed by themselves are dropped after this.
SHUTDOWN_GRACE_SECONDS = 2.0

FilterKey = tuple[frozenset[str] | None, str | None]


class TooManyStreams(RateLimited):
    code = "too_many_streams"


class TenantFeed:
    """The single reader of one tenant's log in this process, and that tenant's streams."""

    def __init__(self, hub: StreamHub, tenant_id: str) -> None:
        self.hub = hub
        self.tenant_id = tenant_id
        self.members: set[Connection] = set()
        # live connections grouped by filters, so each event is matched once per group
        self.groups: dict[FilterKey, set[Connection]] = {}
        # every event at or below it is handed (or being handed) to the live connections
        self.position = 0
        self.ready = asyncio.Event()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def go_live(self, conn: Connection, cursor: int) -> None:
        """From now on the feed hands `conn` every matching event after `cursor`.

        Called with no await between reading `self.position` and this, so nothing the feed
        reads afterwards can be missed; events at or below `cursor` are dropped at delivery.
        """
        conn.cursor = cursor
        self.groups.setdefault(conn.filter_key, set()).add(conn)

    def drop(self, conn: Connection) -> None:
        self.members.discard(conn)
        group = self.groups.get(conn.filter_key)
        if group is not None:
            group.discard(conn)
            if not group:
                del self.groups[conn.filter_key]

    def live(self) -> list[Connection]:
        return [c for group in self.groups.values() for c in group]

    async def run(self) -> None:
        settings = self.hub.ctx.settings
        db = self.hub.ctx.db
        delay = 0.1
        while not self.ready.is_set():
            try:
                async with db.read() as rdb:
                    self.position = await log.head_position(rdb, self.tenant_id)
                self.ready.set()
            except Exception as exc:  # the database may be briefly away; keep trying
                logger.warning(
                    "stream feed for %s cannot read the log head: %s", self.tenant_id, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.event_poll_seconds):
                    await self.wake.wait()
            self.wake.clear()
            try:
                await self.read_new()
            except Exception as exc:
                logger.warning("stream feed for %s cannot read the log: %s", self.tenant_id, exc)
                await asyncio.sleep(0.2)

    async def read_new(self) -> None:
        db = self.hub.ctx.db
        while True:
            async with db.read() as rdb:
                rows = await log.read_after(rdb, self.tenant_id, self.position, limit=READ_PAGE)
            if rows:
                await self.deliver(rows)
            if len(rows) < READ_PAGE:
                return

    async def deliver(self, rows: list[StoredEvent]) -> None:
        """Hand a page of events to the live connections, in position order.

        Each connection gets the page's matching frames as one write, encoded once and shared
        by every connection with the same filters. The recipients are chosen and the position
        moves past the page before the first await: a stream that goes live while the page is
        still being written takes its cursor after it (a resume has replayed it from storage,
        a new stream starts after it), and writing to thousands of sockets yields to the loop
        now and then instead of holding every other request up.
        """
        raws = [event_frame(e.id, e.type, e.envelope) for e in rows]
        batches: dict[tuple[int, ...], Frame] = {}
        plan: list[tuple[tuple[int, ...], Frame, list[Connection]]] = []
        for (types, incident_id), group in self.groups.items():
            picked = tuple(
                i for i, e in enumerate(rows) if matches(e.type, e.incident_id, types, incident_id)
            )
            if picked:
                batch = batches.get(picked)
                if batch is None:
                    batch = batches[picked] = Frame.of(b"".join(raws[i] for i in picked))
                plan.append((picked, batch, list(group)))
        self.position = rows[-1].position
        written = 0
        for picked, batch, streams in plan:
            first = rows[picked[0]].position
            for stream in streams:
                if stream.cursor < first:
                    stream.deliver(batch, len(picked))
                else:  # it joined after part of this page (replayed from storage): the rest
                    rest = [raws[i] for i in picked if rows[i].position > stream.cursor]
                    if rest:
                        stream.deliver(Frame.of(b"".join(rest)), len(rest))
                written += 1
                if written % WRITES_PER_SLICE == 0:
                    await asyncio.sleep(0)
        if spans.enabled():
            _trace_frames(rows, plan)


def _trace_frames(
    rows: list[StoredEvent], plan: list[tuple[tuple[int, ...], Frame, list[Connection]]]
) -> None:
    """A `stream.send` span per event written to streams, linked to the event's own span."""
    counts = [0] * len(rows)
    for picked, _, streams in plan:
        for i in picked:
            counts[i] += len(streams)
    spans.frames_sent(
        (rows[i].id, rows[i].type, rows[i].traceparent, n) for i, n in enumerate(counts) if n
    )


class StreamHub:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.feeds: dict[str, TenantFeed] = {}
        self.shutting_down = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._grace: asyncio.TimerHandle | None = None

    # lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.ctx.broker.add_listener(self._on_wake)
        self._ticker = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        self.shutdown()
        self.ctx.broker.remove_listener(self._on_wake)
        for conn in self.connections():
            if conn.sink is not None:
                conn.sink.abort()
        tasks = [f.task for f in self.feeds.values() if f.task is not None]
        if self._ticker is not None:
            tasks.append(self._ticker)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._grace is not None:
            self._grace.cancel()

    def shutdown(self) -> None:
        """End every stream cleanly and refuse to keep new ones (they end after the preamble)."""
        if self.shutting_down:
            return
        self.shutting_down = True
        for conn in self.connections():
            conn.end("server shutting down; reconnect")
        if self._loop is not None:
            self._grace = self._loop.call_later(SHUTDOWN_GRACE_SECONDS, self._drop_leftovers)

    def shutdown_threadsafe(self) -> None:
        """`shutdown()` from a signal handler or another thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.shutdown)

    def _drop_leftovers(self) -> None:
        for conn in self.connections():
            if conn.sink is not None:
                conn.sink.abort()

    # connections

    def connections(self) -> list[Connection]:
        return [c for feed in self.feeds.values() for c in feed.members]

    def open(
        self,
        principal: Principal,
        types: frozenset[str] | None,
        incident_id: str | None,
        cap: int | None = None,
    ) -> Connection:
        """Register a stream (not yet live) so nothing committed from now on can be missed;
        TooManyStreams when the tenant already has `cap` open in this process (the tenant's
        effective `maxStreams`; the setting's when None)."""
        conn = Connection(principal, types, incident_id)
        existing = self.feeds.get(conn.tenant_id)
        if cap is None:
            cap = self.ctx.settings.sse_max_streams_per_tenant
        if existing is not None and len(existing.members) >= cap:
            raise TooManyStreams(
                f"this tenant already has {cap} open streams",
                details={"limit": cap},
                headers={"Retry-After": "5"},
            )
        feed = existing
        if feed is None:
            feed = self.feeds[conn.tenant_id] = TenantFeed(self, conn.tenant_id)
            feed.task = asyncio.create_task(feed.run())
        feed.members.add(conn)
        SSE_CONNECTIONS.inc()
        if self.shutting_down:
            conn.end("server shutting down; reconnect")
        return conn

    def feed_of(self, conn: Connection) -> TenantFeed:
        return self.feeds[conn.tenant_id]

    def release(self, conn: Connection) -> None:
        feed = self.feeds.get(conn.tenant_id)
        if feed is None or conn not in feed.members:
            return
        feed.drop(conn)
        SSE_CONNECTIONS.dec()
        if conn.closed is None:
            conn.closed = "left"
        if not feed.members:
            del self.feeds[conn.tenant_id]
            if feed.task is not None:
                feed.task.cancel()

    # wake-ups and keepalive

    def _on_wake(self, tenant_id: str) -> None:
        if tenant_id == "*":
            for each in self.feeds.values():
                each.wake.set()
            return
        feed = self.feeds.get(tenant_id)
        if feed is not None:
            feed.wake.set()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.settings.sse_ping_seconds)
            try:
                await self.tick()
            except Exception:
                logger.exception("stream keepalive failed")

    async def tick(self) -> None:
        """Keepalive: end streams whose credential expired or was revoked, ping the others.

        Every open stream's credential is re-read from the store (streams still replaying
        included): API keys, dashboard sessions, and what each ticket was minted from.
        """
        now_ms = self.ctx.clock.now_ms()
        now = now_ms / 1000
        feeds = list(self.feeds.values())
        members = [c for feed in feeds for c in feed.members]
        live = {c for feed in feeds for c in feed.live()}
        try:
            current = await standing.load(self.ctx.db, {c.principal for c in members}, now_ms)
        except Exception as exc:  # the store is away: keep streams, check again next time
            logger.warning("stream credentials could not be re-checked: %s", exc)
            current = None
        for done, conn in enumerate(members, 1):
            if conn.closed is not None:
                continue
            if current is not None:
                ended = current.ended(conn.principal, now)
            elif conn.principal.expires_at is not None and conn.principal.expires_at <= now:
                ended = standing.EXPIRED
            else:
                ended = None
            if ended is not None:
                conn.end(ended)
            elif conn in live:  # a stream still replaying gets no ping in between
                conn.deliver(PING_FRAME, 1)
            if done % WRITES_PER_SLICE == 0:
                await asyncio.sleep(0)


def begin_shutdown(state: object) -> None:
    """Tell the stream hub of an app (by its `app.state`) that the process is stopping."""
    ctx = getattr(state, "ctx", None)
    hub = ctx.stream_hub if ctx is not None else None
    if isinstance(hub, StreamHub):
        hub.shutdown_threadsafe()


def running_hub(ctx: AppContext) -> StreamHub:
    """This process's hub (the `api` role starts it)."""
    hub = ctx.stream_hub
    if not isinstance(hub, StreamHub):
        raise RuntimeError("the stream hub is not running")
    return hub


async def start_stream_hub(ctx: AppContext) -> Callable[[], Awaitable[None]]:
    hub = StreamHub(ctx)
    await hub.start()
    ctx.stream_hub = hub
    return hub.stop

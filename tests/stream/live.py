"""The service under uvicorn on a loopback port, in this process, for stream tests.

An ASGI test client buffers whole responses, so streams are read over real sockets from a
real uvicorn server; running it in the test's own event loop keeps the app context at hand
(publish straight into the log, move a frozen clock, look inside the hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import uvicorn

from causeflow.app import create_app
from causeflow.clock import Clock
from causeflow.context import AppContext
from causeflow.db.migrate import migrate
from causeflow.event.log import StoredEvent, append_event, read_after
from causeflow.settings import Settings
from causeflow.stream.hub import StreamHub, begin_shutdown
from causeflow.tenant.service import provision
from causeflow_sdk.models import sample_data
from tests.support.inproc import Tenant
from tests.support.ports import free_port
from tests.support.sse import SseEvent, SseStream

STREAM = "/v1/notifications/stream"
# Short ticks so keepalive, credential checks and polls happen within a test's patience.
FAST = {"sse_ping_seconds": 0.2, "event_poll_seconds": 0.5}


class _Server(uvicorn.Server):
    """uvicorn inside the test's loop: it must not take over the process's signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class LiveService:
    ctx: AppContext
    base_url: str
    session: aiohttp.ClientSession
    server: uvicorn.Server
    app: Any
    tenants: dict[str, Tenant] = field(default_factory=dict)

    @property
    def hub(self) -> StreamHub:
        hub: StreamHub = self.ctx.stream_hub
        return hub

    @property
    def stream_url(self) -> str:
        return self.base_url + STREAM

    async def tenant(self, name: str = "acme") -> Tenant:
        if name not in self.tenants:
            p = await provision(self.ctx, name=name)
            self.tenants[name] = Tenant(
                p.tenant["id"], p.api_key, p.ingest_key, p.webhook_secret, p.admin_token
            )
        return self.tenants[name]

    def stream(
        self,
        tenant: Tenant | None = None,
        *,
        headers: dict[str, str] | None = None,
        last_event_id: str | None = None,
        **params: str,
    ) -> SseStream:
        if headers is None:
            assert tenant is not None
            headers = tenant.key_headers
        return SseStream(self.session, self.stream_url, headers, last_event_id, params)

    async def publish(
        self,
        tenant: Tenant,
        count: int = 1,
        event_type: str = "incident.created",
        per_tx: int = 1,
        data: dict[str, Any] | None = None,
    ) -> list[StoredEvent]:
        """Append events straight to the log (`per_tx` to a transaction), as producers do."""
        out: list[StoredEvent] = []
        while len(out) < count:
            async with self.ctx.db.transaction() as tx:
                for _ in range(min(per_tx, count - len(out))):
                    out.append(
                        await append_event(
                            tx,
                            tenant_id=tenant.id,
                            event_type=event_type,
                            data=data if data is not None else sample_data(event_type),
                            now_ms=self.ctx.clock.now_ms(),
                        )
                    )
        return out

    async def log_ids(self, tenant: Tenant, after: int = 0) -> list[str]:
        """Every event id of the tenant in log order."""
        ids: list[str] = []
        async with self.ctx.db.read() as conn:
            while True:
                rows = await read_after(conn, tenant.id, after, limit=1000)
                ids += [r.id for r in rows]
                if len(rows) < 1000:
                    return ids
                after = rows[-1].position


@contextlib.asynccontextmanager
async def serving(
    asgi: Any,
    *,
    lifespan: str = "off",
    graceful_seconds: float = 2,
    stopping: Callable[[], None] | None = None,
    stop_seconds: float = 10,
) -> AsyncIterator[tuple[str, _Server]]:
    """`asgi` under uvicorn on a loopback port, in the test's loop: its base URL and server.
    On exit, `stopping` (if given) runs once the server is told to exit, before it is awaited."""
    port = free_port()
    config = uvicorn.Config(
        asgi,
        host="127.0.0.1",
        port=port,
        http="httptools",
        lifespan=lifespan,
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=graceful_seconds,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        if stopping is not None:
            stopping()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(stop_seconds):
                await task


@contextlib.asynccontextmanager
async def live_service(
    settings: Settings, clock: Clock | None = None
) -> AsyncIterator[LiveService]:
    await migrate(settings)
    app = create_app(settings, clock)
    stop_streams = functools.partial(begin_shutdown, app.state)
    served = serving(app, lifespan="on", graceful_seconds=5, stopping=stop_streams, stop_seconds=15)
    async with served as (url, server), aiohttp.ClientSession() as session:
        yield LiveService(app.state.ctx, url, session, server, app)


async def opened(stream: SseStream, timeout: float = 5) -> SseStream:
    """Wait for the preamble (`retry:` and a comment): from then on the stream is live."""
    async with asyncio.timeout(timeout):
        first = await stream.response.content.readuntil(b"\n\n")
    assert not stream.parser.feed(first.decode()), "the preamble carries no event"
    assert stream.parser.retry is not None, first
    return stream


async def next_event(stream: SseStream, timeout: float = 10) -> SseEvent:
    """The next frame that is not a keepalive."""
    async with asyncio.timeout(timeout):
        while True:
            event = await stream.next(timeout=None)
            if event.event != "ping":
                return event


async def next_events(stream: SseStream, count: int, timeout: float = 10) -> list[SseEvent]:
    async with asyncio.timeout(timeout):
        return [await next_event(stream, timeout=timeout) for _ in range(count)]


async def until_ended(stream: SseStream, timeout: float = 10) -> list[SseEvent]:
    """Everything the stream still sends until the server ends it."""
    seen: list[SseEvent] = []
    async with asyncio.timeout(timeout):
        while True:
            try:
                seen.append(await stream.next(timeout=None))
            except EOFError:
                return seen

"""The stream under an ASGI server other than uvicorn: frames go through ASGI `send`.

The app is driven directly with hand-made `receive`/`send`, which is what any server does, so
the portable path (`QueueSink`) is exercised: resume, live, filters, overflow and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from causeflow.app import create_app
from causeflow.context import AppContext
from causeflow.db.migrate import migrate
from causeflow.event.log import StoredEvent, append_event
from causeflow.stream.connection import QueueSink
from causeflow.stream.hub import StreamHub
from causeflow.tenant.service import provision
from causeflow_sdk.models import sample_data
from tests.stream.live import FAST, STREAM
from tests.support.inproc import Tenant, make_settings
from tests.support.sse import SseEvent, SseParser

pytestmark = pytest.mark.integration


@dataclass
class AsgiStream:
    """One request to the app: a `send` that records, a `receive` we can disconnect."""

    status: int | None = None
    headers: dict[bytes, bytes] = field(default_factory=dict)
    parser: SseParser = field(default_factory=SseParser)
    events: asyncio.Queue[SseEvent] = field(default_factory=asyncio.Queue)
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    block_sends: bool = False
    body_sent: bool = False

    async def receive(self) -> dict[str, Any]:
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = dict(message["headers"])
            return
        if self.block_sends:  # a client that stopped reading
            await self.gone.wait()
            return
        for event in self.parser.feed(message.get("body", b"").decode()):
            self.events.put_nowait(event)
        if not message.get("more_body", False):
            self.complete.set()

    async def next(self, timeout: float = 5) -> SseEvent:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if event.event != "ping":
                    return event


@dataclass
class Portable:
    app: Any
    ctx: AppContext
    tenant: Tenant

    @property
    def hub(self) -> StreamHub:
        hub: StreamHub = self.ctx.stream_hub
        return hub

    @contextlib.asynccontextmanager
    async def open(self, query: str = "", **headers: str) -> AsyncIterator[AsgiStream]:
        stream = AsgiStream()
        raw = [(b"x-api-key", self.tenant.api_key.encode())]
        raw += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": STREAM,
            "raw_path": STREAM.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": raw,
            "client": ("127.0.0.1", 50000),
            "server": ("cf.test", 80),
        }
        task = asyncio.create_task(self.app(scope, stream.receive, stream.send))
        try:
            yield stream
        finally:
            stream.gone.set()
            async with asyncio.timeout(5):
                await task

    async def publish(self, count: int = 1, event_type: str = "incident.created") -> list[Any]:
        out: list[StoredEvent] = []
        async with self.ctx.db.transaction() as tx:
            for _ in range(count):
                out.append(
                    await append_event(
                        tx,
                        tenant_id=self.tenant.id,
                        event_type=event_type,
                        data=sample_data(event_type),
                        now_ms=self.ctx.clock.now_ms(),
                    )
                )
        return out


@pytest.fixture
async def portable(tmp_path: Path) -> AsyncIterator[Portable]:
    settings = make_settings(tmp_path, sse_buffer_events=5, **FAST)
    await migrate(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        ctx: AppContext = app.state.ctx
        p = await provision(ctx, name="acme")
        tenant = Tenant(p.tenant["id"], p.api_key, p.ingest_key, p.webhook_secret, p.admin_token)
        yield Portable(app, ctx, tenant)


async def _until_live(portable: Portable, count: int = 1) -> None:
    async with asyncio.timeout(5):
        while sum(len(f.live()) for f in portable.hub.feeds.values()) < count:
            await asyncio.sleep(0.01)


async def test_resume_then_live_then_disconnect(portable: Portable) -> None:
    first = await portable.publish(3)
    async with portable.open(last_event_id=first[0].id) as stream:
        replayed = [await stream.next(), await stream.next()]
        await _until_live(portable)
        assert all(isinstance(c.sink, QueueSink) for c in portable.hub.connections())
        assert stream.status == 200
        assert stream.headers[b"content-type"] == b"text/event-stream; charset=utf-8"
        assert stream.parser.retry == 3000
        live = await portable.publish(2)
        got = [await stream.next(), await stream.next()]
    assert [e.id for e in replayed] == [e.id for e in first[1:]]
    assert [e.id for e in got] == [e.id for e in live]
    assert portable.hub.connections() == []  # released once the client left


async def test_filters_reset_and_clean_shutdown(portable: Portable) -> None:
    async with (
        portable.open("events=incident.status_changed") as filtered,
        portable.open("lastEventId=evt_01M8E9MVA57MBW9DQG99WVY68V") as expired,
    ):
        reset = await expired.next()
        assert reset.event == "reset" and reset.json()["reason"] == "cursor_expired"
        await _until_live(portable, 2)
        await portable.publish(1, "incident.created")
        [changed] = await portable.publish(1, "incident.status_changed")
        assert (await filtered.next()).id == changed.id
        portable.hub.shutdown()
        for stream in (filtered, expired):
            async with asyncio.timeout(5):
                await stream.complete.wait()  # the response was finished properly
            assert "server shutting down; reconnect" in stream.parser.comments


async def test_a_blocked_client_overflows_and_is_dropped(portable: Portable) -> None:
    async with portable.open() as stuck, portable.open() as fine:
        await _until_live(portable, 2)
        stuck.block_sends = True
        published = []
        for _ in range(12):  # more than the buffer of 5, at a pace the other client keeps
            published += await portable.publish(1)
            await asyncio.sleep(0.01)
        got = [await fine.next() for _ in published]
        assert [e.id for e in got] == [e.id for e in published]
        stuck_conn = [c for c in portable.hub.connections() if c.closed == "overflow"]
        assert len(stuck_conn) == 1

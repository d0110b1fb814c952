"""A small loopback SSE server speaking the stream (docs/reference.md §4), for the client's edges.

It holds a list of events, answers `GET /v1/notifications/stream` with replay after
`Last-Event-ID` (or `reset` for an unknown id) then live events, and can be told to drop every
open connection, to refuse requests with a status, or to stay silent. Every request's
`Last-Event-ID` is recorded so tests see what the client asked for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from causeflow.ids import new_id

TENANT = "ten_01M86BHRT3M9S346Q3D25VT4F5"


def envelope(event_id: str, event_type: str = "incident.created") -> str:
    return orjson.dumps(
        {
            "id": event_id,
            "event": event_type,
            "timestamp": "2026-11-27T08:42:53.123Z",
            "tenantId": TENANT,
            "data": {"n": event_id},
        }
    ).decode()


@dataclass
class StandIn:
    api_key: str = "good-key"
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (id, type, envelope)
    resumed_from: list[str | None] = field(default_factory=list)
    refuse: list[int] = field(default_factory=list)  # statuses for the next requests, in order
    silent: bool = False  # send the preamble, then nothing (no pings)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _responses: set[web.StreamResponse] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> StandIn:
        app = web.Application()
        app.router.add_get("/v1/notifications/stream", self._stream)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        self.drop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def publish(self, event_type: str = "incident.created") -> str:
        event_id = new_id("evt")
        self.events.append((event_id, event_type, envelope(event_id, event_type)))
        async with self._changed:
            self._changed.notify_all()
        return event_id

    def drop(self) -> None:
        """Cut every open stream's connection, as a crash or a network failure would."""
        for response in list(self._responses):
            transport = response._req.transport if response._req is not None else None  # noqa: SLF001
            if transport is not None:
                transport.close()
        self._responses.clear()

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        self.resumed_from.append(request.headers.get("Last-Event-ID"))
        if self.refuse:
            status = self.refuse.pop(0)
            body = orjson.dumps({"error": f"status_{status}", "message": "refused on purpose"})
            headers = {"Retry-After": "0"} if status in (429, 503) else {}
            return web.Response(
                status=status, body=body, content_type="application/json", headers=headers
            )
        if request.headers.get("X-API-Key") != self.api_key:
            body = orjson.dumps({"error": "unauthorized", "message": "bad key"})
            return web.Response(status=401, body=body, content_type="application/json")
        live_from = len(self.events)  # the stream is live from here: nothing later is missed
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        self._responses.add(response)
        await response.write(b"retry: 3000\n: stream open\n\n")
        if self.silent:
            await asyncio.sleep(3600)
        cursor = live_from
        after = request.headers.get("Last-Event-ID")
        if after:
            ids = [e[0] for e in self.events]
            if after in ids:
                cursor = ids.index(after) + 1
            else:
                reset = orjson.dumps({"reason": "cursor_expired", "lastEventId": after})
                await response.write(b"event: reset\ndata: " + reset + b"\n\n")
        try:
            while True:
                while cursor < len(self.events):
                    event_id, event_type, data = self.events[cursor]
                    frame = f"id: {event_id}\nevent: {event_type}\ndata: {data}\n\n"
                    await response.write(frame.encode() + b"event: ping\ndata: {}\n\n")
                    cursor += 1
                async with self._changed:
                    await self._changed.wait_for(lambda: cursor < len(self.events))
        finally:
            self._responses.discard(response)


class ThreadedStandIn:
    """The stand-in on its own event loop in a thread, for tests of the blocking client."""

    def __init__(self) -> None:
        self._ready: concurrent.futures.Future[StandIn] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await StandIn().start()
        self._ready.set_result(server)
        try:
            await self._stop.wait()
        finally:
            await server.stop()

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self._ready.result(10)

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def publish(self, event_type: str = "incident.created") -> str:
        assert self._loop is not None
        server = self._ready.result()
        return asyncio.run_coroutine_threadsafe(server.publish(event_type), self._loop).result(5)

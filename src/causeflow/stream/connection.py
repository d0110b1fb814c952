"""One open stream as the hub sees it: who it is for, its filters and cursor, and its sink.

A sink is where frames go. Under uvicorn (what `causeflow serve` runs) `TransportSink` writes
ready-made HTTP chunks straight to the socket's transport: the hub hands one shared `bytes`
to every connection without waking a task per connection, and the transport's own write
buffer is the bounded per-connection buffer. Any other ASGI server gets `QueueSink`, which
keeps a bounded list of frames drained by the request's task through ASGI `send`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from causeflow.auth.principal import Principal
from causeflow.stream.framing import LAST_CHUNK, Frame, chunk, comment

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Replay writes wait while more than this is buffered for the socket (flow control).
REPLAY_HIGH_WATER = 256 * 1024
# Once a direct sink is ended, how long its request waits to hear of the connection's end
# before it stops waiting (see `TransportSink.run`).
LEFT_GRACE_SECONDS = 2.0


class Sink(Protocol):
    def write(self, frame: Frame, count: int = 1) -> bool:
        """Queue `count` frames joined in one; False when gone or over the buffer's bound."""

    async def send_now(self, data: bytes) -> None:
        """Send before the stream is live (preamble, replay), waiting for the socket to drain."""

    @property
    def gone(self) -> bool:
        """The client has left (or the stream was ended): stop producing for it."""

    def end(self, why: str) -> None:
        """Finish the response cleanly after what is already queued."""

    def abort(self) -> None:
        """Drop the connection at once (a slow consumer): it resumes with Last-Event-ID."""

    async def run(self) -> None:
        """Serve the live phase until the client leaves or the stream is ended."""


def uvicorn_transport(scope: MutableMapping[str, Any]) -> asyncio.Transport | None:
    """The socket transport of this request when served by uvicorn's HTTP/1.1 protocols.

    ASGI does not expose the transport; uvicorn runs each request as a task whose coroutine is
    `RequestResponseCycle.run_asgi`, so its `self` is the cycle. The match is checked (same
    scope object, a live transport, chunked HTTP/1.1); anything else gets None and the portable
    `QueueSink` instead.
    """
    if scope.get("http_version") != "1.1":
        return None
    task = asyncio.current_task()
    coro = task.get_coro() if task is not None else None
    frame = getattr(coro, "cr_frame", None)
    if frame is None or getattr(coro, "__name__", "") != "run_asgi":
        return None
    cycle = frame.f_locals.get("self")
    transport: Any = getattr(cycle, "transport", None)
    # uvloop's transports do not derive from asyncio.Transport: check what is used instead.
    if getattr(cycle, "scope", None) is not scope or not all(
        callable(getattr(transport, name, None)) for name in _TRANSPORT_METHODS
    ):
        return None
    # The head went out without a length, so uvicorn frames the body in chunks as we do.
    if getattr(cycle, "chunked_encoding", None) is not True or transport.is_closing():
        return None
    return transport


_TRANSPORT_METHODS = ("write", "get_write_buffer_size", "is_closing", "close", "abort")


class TransportSink:
    """Writes chunks straight to uvicorn's transport; the response's `send` wrote the head."""

    __slots__ = (
        "transport",
        "receive",
        "limit",
        "written",
        "backlog",
        "ended",
        "task",
        "timer",
        "gave_up",
    )

    def __init__(self, transport: asyncio.Transport, receive: Receive, limit: int) -> None:
        self.transport = transport
        self.receive = receive
        self.limit = limit
        self.written = 0
        # end offsets of frames not yet handed to the kernel; None while nothing is pending
        self.backlog: deque[int] | None = None
        self.ended = False
        self.task: asyncio.Task[Any] | None = None  # the request's, while in `run`
        self.timer: asyncio.TimerHandle | None = None  # when `run` stops waiting once ended
        self.gave_up = False  # `run` was stopped waiting (its task cancelled) by the timer

    @property
    def gone(self) -> bool:
        return self.ended or self.transport.is_closing()

    def write(self, frame: Frame, count: int = 1) -> bool:
        transport = self.transport
        if self.ended or transport.is_closing():
            return False
        transport.write(frame.chunk)
        self.written += len(frame.chunk)
        unsent = transport.get_write_buffer_size()
        if unsent == 0:
            self.backlog = None
            return True
        # Count frames still waiting in the buffer: the bound is in frames, as configured
        # (the frames of one write count as pending until all of it has gone out).
        backlog = self.backlog
        if backlog is None:
            backlog = self.backlog = deque()
        backlog.extend([self.written] * count)
        flushed = self.written - unsent
        while backlog and backlog[0] <= flushed:
            backlog.popleft()
        return len(backlog) <= self.limit

    async def send_now(self, data: bytes) -> None:
        if self.gone:
            return
        # Written before the first await: callers rely on nothing slipping in ahead of it.
        self.transport.write(chunk(data))
        while not self.gone and self.transport.get_write_buffer_size() > REPLAY_HIGH_WATER:
            await asyncio.sleep(0.01)

    def end(self, why: str) -> None:
        if self.ended:
            return
        self.ended = True
        transport = self.transport
        if not transport.is_closing():
            # The last chunk ends the response properly; closing the socket then wakes the
            # request's `receive()` with a disconnect, which ends its task.
            transport.write(chunk(comment(why)) + LAST_CHUNK)
            transport.close()
        self._stop_waiting_soon()

    def abort(self) -> None:
        self.ended = True
        self.transport.abort()
        self._stop_waiting_soon()

    async def run(self) -> None:
        # Live frames never pass through this task: it only waits for the connection to end.
        # uvicorn reports the connection's end to the latest request on it only: once the
        # client has sent another request behind the stream (pipelining), this `receive()`
        # never hears of it. An ended sink therefore stops waiting after a grace period.
        task = self.task = asyncio.current_task()
        if self.ended:
            self._stop_waiting_soon()
        try:
            while (await self.receive())["type"] != "http.disconnect":
                pass
        except asyncio.CancelledError:
            if not self.gave_up or task is None or task.uncancel() > 0:
                raise  # not (only) ours: the server is cancelling the request
        finally:
            self.task = None
            if self.timer is not None:
                self.timer.cancel()

    def _stop_waiting_soon(self) -> None:
        if self.task is None or self.timer is not None:
            return
        self.timer = asyncio.get_running_loop().call_later(LEFT_GRACE_SECONDS, self._stop_waiting)

    def _stop_waiting(self) -> None:
        task = self.task
        if task is None:
            return
        self.transport.abort()  # whatever of the end was still unsent is dropped
        self.gave_up = True
        task.cancel()


class QueueSink:
    """The portable path: a bounded list of frames sent by the request's task via `send`."""

    __slots__ = ("send", "receive", "limit", "frames", "pending", "waiter", "state")

    def __init__(self, send: Send, receive: Receive, limit: int) -> None:
        self.send = send
        self.receive = receive
        self.limit = limit
        self.frames: list[bytes] = []
        self.pending = 0  # frames in `frames` (one entry may hold several)
        self.waiter: asyncio.Future[None] | None = None
        self.state = "open"  # open | ending | aborted | left

    @property
    def gone(self) -> bool:
        return self.state != "open"

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def write(self, frame: Frame, count: int = 1) -> bool:
        if self.state != "open" or self.pending + count > self.limit:
            return False
        self.frames.append(frame.raw)
        self.pending += count
        self._wake()
        return True

    async def send_now(self, data: bytes) -> None:
        if self.state == "open":
            await self.send({"type": "http.response.body", "body": data, "more_body": True})

    def end(self, why: str) -> None:
        if self.state == "open":
            self.frames.append(comment(why))
            self.state = "ending"
            self._wake()

    def abort(self) -> None:
        self.state = "aborted"
        self._wake()

    async def _sent(self, body: bytes, more: bool) -> bool:
        """Send `body`; False when the connection is gone. uvicorn tells a request of its
        connection's loss only while it is the latest on it: behind a request pipelined after
        the stream, `send` finds the socket closed and raises instead."""
        try:
            await self.send({"type": "http.response.body", "body": body, "more_body": more})
        except (RuntimeError, OSError):
            self.state = "left"
            return False
        return True

    async def _watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.state = "left"
        self._wake()

    async def run(self) -> None:
        watcher = asyncio.ensure_future(self._watch())
        try:
            while True:
                while not self.frames and self.state == "open":
                    self.waiter = asyncio.get_running_loop().create_future()
                    await self.waiter
                    self.waiter = None
                if self.state in ("aborted", "left"):
                    return
                if self.frames:
                    batch, self.frames, self.pending = self.frames, [], 0
                    body = batch[0] if len(batch) == 1 else b"".join(batch)
                    if not await self._sent(body, more=True):
                        return
                    continue
                await self._sent(b"", more=False)
                return
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher


class Connection:
    """A stream's state in the hub; kept small (slots, no task of its own)."""

    __slots__ = ("tenant_id", "principal", "types", "incident_id", "cursor", "sink", "closed")

    def __init__(
        self,
        principal: Principal,
        types: frozenset[str] | None,
        incident_id: str | None,
    ) -> None:
        assert principal.tenant_id is not None
        self.tenant_id: str = principal.tenant_id
        self.principal = principal
        self.types = types
        self.incident_id = incident_id
        # Highest log position this stream had accounted for when it went live: live events
        # at or below it were already replayed from storage and are dropped (the seam rule).
        self.cursor = -1
        self.sink: Sink | None = None
        self.closed: str | None = None  # why the stream is ending, once it is

    @property
    def filter_key(self) -> tuple[frozenset[str] | None, str | None]:
        return self.types, self.incident_id

    def deliver(self, frame: Frame, count: int) -> None:
        """Queue `count` frames as one write; a connection over its bound is dropped."""
        sink = self.sink
        if sink is not None and not sink.write(frame, count) and self.closed is None:
            self.closed = "overflow" if not sink.gone else "left"
            sink.abort()

    def end(self, why: str) -> None:
        """End the stream cleanly (shutdown, credential expired or revoked)."""
        if self.closed is None:
            self.closed = why
        if self.sink is not None:
            self.sink.end(why)

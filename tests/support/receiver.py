"""A loopback HTTP receiver that records every request and answers as told.

Webhook tests point subscriptions at it and script its answers per path (succeed, fail N
times, hang, 410, 429 with Retry-After, redirect, drop the connection). `Receiver` runs in the
caller's event loop; `ThreadedReceiver` runs the same server in a background thread for
synchronous tests that drive subprocesses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NoReturn, Protocol, TypeVar

import orjson
from aiohttp import web

T = TypeVar("T")

# How long stop() lets in-flight handlers finish before cancelling them.
SHUTDOWN_GRACE_SECONDS = 0.5


class Headers(dict[str, str]):
    """Request headers with their original spelling; lookups ignore case.

    Repeated headers are joined with ", " (RFC 9110 5.3); `ReceivedRequest.raw_headers` keeps
    every line as sent.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        self._index: dict[str, str] = {}
        for name, value in pairs:
            key = self._index.setdefault(name.lower(), name)
            previous = dict.get(self, key)
            super().__setitem__(key, value if previous is None else f"{previous}, {value}")

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(self._index.get(name.lower(), name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def get(self, name: str, default: Any = None) -> Any:
        key = self._index.get(name.lower())
        return default if key is None else super().__getitem__(key)


@dataclass
class ReceivedRequest:
    method: str
    path: str
    query: str
    headers: Headers
    raw_headers: list[tuple[str, str]] = field(repr=False)
    body: bytes
    received_at: float  # time.monotonic(), to measure intervals between attempts
    received_at_wall: float  # time.time(), to compare with timestamps the service sends
    status: int | None = None  # what the receiver answered; None while in flight or dropped

    def json(self) -> Any:
        return orjson.loads(self.body)

    def text(self) -> str:
        return self.body.decode()


class Behavior(Protocol):
    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        """Answer one request; `stopping` is set when the receiver shuts down."""
        ...


@dataclass
class Status:
    """Answer with a fixed status, body and headers."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        return web.Response(status=self.status, body=self.body or None, headers=self.headers)


@dataclass
class Ok(Status):
    status: int = 200


@dataclass
class Fail:
    """Answer `status` for the first `times` requests (None: forever), then 200."""

    status: int = 500
    times: int | None = None
    body: bytes = b"failing on purpose"
    served: int = field(default=0, init=False)

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        self.served += 1
        if self.times is None or self.served <= self.times:
            return web.Response(status=self.status, body=self.body)
        return web.Response(status=200)


@dataclass
class TooMany:
    """429 with a Retry-After header (None: without one)."""

    retry_after: str | None = "2"

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return web.Response(status=429, headers=headers, body=b"slow down")


@dataclass
class Redirect:
    location: str
    status: int = 302

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        return web.Response(status=self.status, headers={"Location": self.location})


@dataclass
class Slow:
    """Wait `seconds`, then answer `status`: a slow but successful receiver."""

    seconds: float
    status: int = 200

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        await _pause(self.seconds, request, stopping)
        return web.Response(status=self.status)


@dataclass
class Concurrent:
    """Answer 200 after `seconds`; record each arrival with the requests then in flight (this
    one included), to check a sender's concurrency caps."""

    seconds: float
    inflight: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, in flight)

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        self.inflight += 1
        self.samples.append((time.monotonic(), self.inflight))
        try:
            await _pause(self.seconds, request, stopping)
        finally:  # also when the sender's connection dies (its process was killed)
            self.inflight -= 1
        return web.Response(status=200)

    def most(self, start: float = 0.0, end: float = float("inf")) -> int:
        """The most requests in flight at an arrival between `start` and `end` (monotonic)."""
        return max((n for t, n in list(self.samples) if start <= t < end), default=0)


@dataclass
class Hang:
    """Hold the request without answering for `seconds` (the sender's timeout should fire)."""

    seconds: float = 3600

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        await _pause(self.seconds, request, stopping)
        return web.Response(status=200)


@dataclass
class Drop:
    """Close the connection without answering (a connection error for the sender)."""

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        _drop_connection(request)


def _drop_connection(request: web.Request) -> NoReturn:
    if request.transport is not None:
        request.transport.close()
    # Nothing can be written now; aiohttp treats the cancelled handler as a client hang-up.
    raise asyncio.CancelledError


async def _pause(seconds: float, request: web.Request, stopping: asyncio.Event) -> None:
    """Sleep, but when the receiver stops, drop the connection unanswered, as a dying server."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    if stopping.is_set():
        _drop_connection(request)


@dataclass
class Sequence:
    """The n-th request gets the n-th behaviour; the last one answers every request after."""

    steps: list[Behavior]
    served: int = field(default=0, init=False)

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        if not self.steps:
            raise ValueError("Sequence needs at least one step")
        step = self.steps[min(self.served, len(self.steps) - 1)]
        self.served += 1
        return await step.respond(request, stopping)


class Receiver:
    """The receiver in the current event loop; bound to 127.0.0.1 on a free port by default."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self.requests: list[ReceivedRequest] = []
        self._behaviors: dict[str | None, Behavior] = {}
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("receiver not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_for(self, path: str = "/hook") -> str:
        return self.url + path

    async def start(self) -> Receiver:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a sender that gives up (timeout) cancels our hanging handler.
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        )
        await runner.setup()
        # Binding our own socket gives the real port with no window for another process to
        # take it, and SO_REUSEADDR lets a stopped receiver come back on the same port.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError:
            sock.close()
            await runner.cleanup()
            raise
        self._port = int(sock.getsockname()[1])
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._stopping.clear()
        self._runner = runner
        return self

    async def stop(self) -> None:
        """Stop listening (the port then refuses connections); recorded requests are kept."""
        if self._runner is None:
            return
        self._stopping.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def set_behavior(self, path: str | None, behavior: Behavior) -> None:
        """Answer requests to `path` (exact, without query) with `behavior`; None: the default."""
        self._behaviors[path] = behavior

    def reset_behaviors(self) -> None:
        self._behaviors.clear()

    def clear(self) -> None:
        self.requests.clear()

    def requests_for(self, path: str | None = None) -> list[ReceivedRequest]:
        return [r for r in self.requests if path is None or r.path == path]

    async def wait_for(
        self, count: int, timeout: float = 10, path: str | None = None
    ) -> list[ReceivedRequest]:
        """Wait until at least `count` requests (to `path`, if given) arrived; return them all.

        Woken by each recorded request through a Condition, so it returns as soon as the
        count is reached. Raises TimeoutError saying what did arrive.
        """
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: len(self.requests_for(path)) >= count),
                    timeout,
                )
            except TimeoutError:
                seen = [f"{r.method} {r.path} -> {r.status}" for r in self.requests_for(path)]
                where = f" to {path}" if path else ""
                raise TimeoutError(
                    f"expected {count} requests{where} within {timeout} s, got {len(seen)}: {seen}"
                ) from None
        return self.requests_for(path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        record = ReceivedRequest(
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers=Headers(raw),
            raw_headers=raw,
            body=body,
            received_at=time.monotonic(),
            received_at_wall=time.time(),
        )
        self.requests.append(record)
        async with self._changed:
            self._changed.notify_all()
        behavior = self._behaviors.get(request.path) or self._behaviors.get(None) or Ok()
        response = await behavior.respond(request, self._stopping)
        record.status = response.status
        return response


class ThreadedReceiver:
    """A `Receiver` serving from its own event loop in a daemon thread, driven synchronously."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.receiver = Receiver(host, port)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> ThreadedReceiver:
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(started),), name="receiver", daemon=True
        )
        self._thread.start()
        started.result(timeout=10)
        return self

    async def _main(self, started: concurrent.futures.Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.receiver.start()
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await self.receiver.stop()

    def stop(self) -> None:
        if self._thread is None or self._loop is None or self._stop is None:
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> ThreadedReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self.receiver.port

    @property
    def url(self) -> str:
        return self.receiver.url

    def url_for(self, path: str = "/hook") -> str:
        return self.receiver.url_for(path)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of the recorded requests."""
        return self._call(lambda: list(self.receiver.requests))

    def requests_for(self, path: str | None = None) -> list[ReceivedRequest]:
        return self._call(lambda: self.receiver.requests_for(path))

    def set_behavior(self, path: str | None, behavior: Behavior) -> None:
        self._call(lambda: self.receiver.set_behavior(path, behavior))

    def reset_behaviors(self) -> None:
        self._call(self.receiver.reset_behaviors)

    def clear(self) -> None:
        self._call(self.receiver.clear)

    def wait_for_sync(
        self, count: int, timeout: float = 10, path: str | None = None
    ) -> list[ReceivedRequest]:
        """Block until `count` requests arrived (see Receiver.wait_for)."""
        future = self._submit(self.receiver.wait_for(count, timeout, path))
        return future.result(timeout + 5)

    async def wait_for(
        self, count: int, timeout: float = 10, path: str | None = None
    ) -> list[ReceivedRequest]:
        """The same wait, awaitable from another event loop."""
        return await asyncio.wrap_future(self._submit(self.receiver.wait_for(count, timeout, path)))

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._loop is None:
            coro.close()
            raise RuntimeError("receiver not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _call(self, fn: Callable[[], T]) -> T:
        # Everything touching the receiver's state runs on its loop, so no lock is needed.
        async def run() -> T:
            return fn()

        return self._submit(run()).result(timeout=10)


__all__ = [
    "Behavior",
    "Concurrent",
    "Drop",
    "Fail",
    "Hang",
    "Headers",
    "Ok",
    "ReceivedRequest",
    "Receiver",
    "Redirect",
    "Sequence",
    "Slow",
    "Status",
    "ThreadedReceiver",
    "TooMany",
]

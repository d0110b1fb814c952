"""`Client`: the same API as `AsyncClient` for code without an event loop.

Each `Client` runs one private event loop in a daemon thread and hands it the async client's
coroutines, so the two never diverge (every method here is the async one, awaited for you).
It works from any thread, including one that already runs a loop of its own. Stream hooks
(`on_connect`, `on_disconnect`) are called on that private thread. `with` or `close()` ends
the session and the thread; a client that is simply dropped (or still open at exit) is closed
the same way, without "Unclosed client session" warnings.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from causeflow_sdk import resources as aio
from causeflow_sdk.client import AsyncClient
from causeflow_sdk.models import Envelope
from causeflow_sdk.stream import DEFAULT_IDLE_TIMEOUT, EventStream, RawEvent, StreamReset

P = ParamSpec("P")
R = TypeVar("R")
G = TypeVar("G")

# Seconds `close()` waits for the session to close and for the loop's thread to end.
CLOSE_TIMEOUT = 10.0


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """The loop thread's body: run until stopped, then cancel what is left and close the loop."""
    try:
        loop.run_forever()
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _shut_down(
    loop: asyncio.AbstractEventLoop,
    thread: threading.Thread,
    on_close: Callable[[], Coroutine[Any, Any, None]],
) -> None:
    """Run `on_close` on the loop, then stop it; wait for the thread unless called on it."""
    if not thread.is_alive():
        return

    async def finish() -> None:
        try:
            await on_close()
        finally:
            loop.stop()

    if threading.current_thread() is thread:
        # Dropped by code running on the loop itself: it cannot wait for the loop here.
        loop.create_task(finish())
        return
    future = asyncio.run_coroutine_threadsafe(finish(), loop)
    try:
        future.result(timeout=CLOSE_TIMEOUT)
    except Exception:  # closing is best effort: the loop stops regardless
        loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=CLOSE_TIMEOUT)


class _Runner:
    """An event loop in a daemon thread; `run` blocks the caller until a coroutine is done.

    `close()` runs `on_close` (the async client's close, which closes its aiohttp session) on
    the loop, then stops the loop and its thread. The same happens without `close()`: when the
    last object using the runner (the client, one of its groups, a stream, an iterator) is
    dropped, or at interpreter exit, through a `weakref.finalize` that holds no reference to
    the runner itself.
    """

    def __init__(self, on_close: Callable[[], Coroutine[Any, Any, None]]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=_serve, args=(loop,), name="causeflow-client", daemon=True
        )
        self._thread.start()
        self._finalizer = weakref.finalize(self, _shut_down, loop, self._thread, on_close)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive or not self._thread.is_alive()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        if self.closed:
            coro.close()
            raise RuntimeError("this client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C (or any error) in the caller: do not leave the coroutine running.
            future.cancel()
            raise

    def iterate(self, source: AsyncIterator[R]) -> Iterator[R]:
        async def step() -> R:
            return await anext(source)

        try:
            while True:
                try:
                    yield self.run(step())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None and not self.closed:
                with contextlib.suppress(RuntimeError, concurrent.futures.CancelledError):
                    self.run(aclose())

    def close(self) -> None:
        self._finalizer()


class _SyncGroup(Generic[G]):
    def __init__(self, group: G, runner: _Runner) -> None:
        self._group = group
        self._runner = runner


def _blocking(
    fn: Callable[Concatenate[G, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[_SyncGroup[G], P], R]:
    @functools.wraps(fn)
    def call(self: _SyncGroup[G], /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._runner.run(fn(self._group, *args, **kwargs))

    return call


def _iterating(
    fn: Callable[Concatenate[G, P], AsyncIterator[R]],
) -> Callable[Concatenate[_SyncGroup[G], P], Iterator[R]]:
    @functools.wraps(fn)
    def call(self: _SyncGroup[G], /, *args: P.args, **kwargs: P.kwargs) -> Iterator[R]:
        return self._runner.iterate(fn(self._group, *args, **kwargs))

    return call


class Subscriptions(_SyncGroup[aio.Subscriptions]):
    create = _blocking(aio.Subscriptions.create)
    list = _blocking(aio.Subscriptions.list)
    iterate = _iterating(aio.Subscriptions.iterate)
    get = _blocking(aio.Subscriptions.get)
    update = _blocking(aio.Subscriptions.update)
    delete = _blocking(aio.Subscriptions.delete)
    rotate_secret = _blocking(aio.Subscriptions.rotate_secret)
    test = _blocking(aio.Subscriptions.test)
    deliveries = _blocking(aio.Subscriptions.deliveries)
    messages_page = _blocking(aio.Subscriptions.messages_page)
    messages = _iterating(aio.Subscriptions.messages)
    recover = _blocking(aio.Subscriptions.recover)
    replay = _blocking(aio.Subscriptions.replay)


class Deliveries(_SyncGroup[aio.Deliveries]):
    get = _blocking(aio.Deliveries.get)
    retry = _blocking(aio.Deliveries.retry)


class Incidents(_SyncGroup[aio.Incidents]):
    create = _blocking(aio.Incidents.create)
    list = _blocking(aio.Incidents.list)
    iterate = _iterating(aio.Incidents.iterate)
    get = _blocking(aio.Incidents.get)
    update = _blocking(aio.Incidents.update)


class Events(_SyncGroup[aio.Events]):
    publish = _blocking(aio.Events.publish)
    publish_batch = _blocking(aio.Events.publish_batch)
    list = _blocking(aio.Events.list)
    iterate = _iterating(aio.Events.iterate)


class SyncEventStream:
    """`for item in stream` (Envelope or StreamReset); `raw()`, `close()`, `with` as async."""

    def __init__(self, stream: EventStream, runner: _Runner) -> None:
        self._stream = stream
        self._runner = runner

    @property
    def last_event_id(self) -> str | None:
        return self._stream.last_event_id

    def __iter__(self) -> Iterator[Envelope | StreamReset]:
        return self._runner.iterate(aiter(self._stream))

    def raw(self) -> Iterator[RawEvent | StreamReset]:
        return self._runner.iterate(self._stream.raw())

    def close(self) -> None:
        self._runner.run(self._stream.close())

    def __enter__(self) -> SyncEventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Client:
    """Blocking client: `with Client(url, api_key=...) as cf: cf.incidents.list()`."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        user_agent: str | None = None,
    ) -> None:
        self._async = AsyncClient(
            base_url, api_key=api_key, token=token, timeout=timeout, user_agent=user_agent
        )
        self._runner = _Runner(self._async.close)
        self.subscriptions = Subscriptions(self._async.subscriptions, self._runner)
        self.deliveries = Deliveries(self._async.deliveries, self._runner)
        self.incidents = Incidents(self._async.incidents, self._runner)
        self.events = Events(self._async.events, self._runner)

    @property
    def base_url(self) -> str:
        return self._async.base_url

    def stream(
        self,
        events: Sequence[str] | None = None,
        incident_id: str | None = None,
        last_event_id: str | None = None,
        *,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_reconnects: int | None = None,
        on_connect: Callable[[str | None], None] | None = None,
        on_disconnect: Callable[[BaseException | None, float], None] | None = None,
    ) -> SyncEventStream:
        """See `AsyncClient.stream`; iterate the result with a plain `for`."""
        stream = self._async.stream(
            events,
            incident_id,
            last_event_id,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            idle_timeout=idle_timeout,
            max_reconnects=max_reconnects,
            on_connect=on_connect,
            on_disconnect=on_disconnect,
        )
        return SyncEventStream(stream, self._runner)

    def create_stream_ticket(self) -> dict[str, Any]:
        return self._runner.run(self._async.create_stream_ticket())

    def close(self) -> None:
        """Close the session and stop the private loop (also done when the client is dropped)."""
        self._runner.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

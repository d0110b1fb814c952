"""`EventStream`: the notification stream as an async iterator that survives drops.

It remembers the id of the last event it yielded; when the connection ends (server restart,
network drop, slow-consumer cut, idle timeout) it reconnects with capped, jittered exponential
backoff and sends `Last-Event-ID`, so the service replays what was missed: nothing is lost or
repeated. A `reset` from the service (the cursor is unknown, purged, or too far behind) is
yielded as a `StreamReset` item: events were skipped, so the caller should refetch its state.
Credentials that stop working (401/403) and refused filters (4xx) end the iteration with
`CauseFlowAPIError`; 429, 5xx and connection errors are retried.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

import aiohttp
import orjson

from causeflow_sdk.errors import CauseFlowAPIError, CauseFlowConnectionError, CauseFlowError
from causeflow_sdk.http import Transport, api_error
from causeflow_sdk.models import Envelope
from causeflow_sdk.sse import SseParser, reconnect_delay

STREAM_PATH = "/v1/notifications/stream"
# The service pings every 30 s by default; silence for longer than this means a dead link.
DEFAULT_IDLE_TIMEOUT = 75.0


@dataclass(frozen=True)
class StreamReset:
    """The service could not resume from `last_event_id` (`reason`: e.g. cursor_expired,
    too_far_behind): events may have been missed. Refetch state, then keep iterating."""

    reason: str
    last_event_id: str | None


@dataclass(frozen=True)
class RawEvent:
    """One event as it came off the wire: `data` is the envelope JSON, byte for byte."""

    id: str
    event: str
    data: str

    def envelope(self) -> Envelope:
        return Envelope.model_validate_json(self.data)


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


class EventStream:
    """Iterate with `async for item in stream` (items: `Envelope` or `StreamReset`).

    `raw()` yields `RawEvent` instead of `Envelope`, for callers that forward the exact bytes.
    `last_event_id` is the resume point; `close()` (or leaving `async with`) ends it.
    `on_connect(last_event_id)` is called each time the stream is live; `on_disconnect(error,
    delay)` before each wait to reconnect. `max_reconnects` (None: forever) bounds consecutive
    failed reconnects, after which the last error is raised.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        events: Sequence[str] | None = None,
        incident_id: str | None = None,
        last_event_id: str | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_reconnects: int | None = None,
        on_connect: Callable[[str | None], None] | None = None,
        on_disconnect: Callable[[BaseException | None, float], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._t = transport
        self._params: dict[str, str] = {}
        if events:
            self._params["events"] = ",".join(events)
        if incident_id:
            self._params["incidentId"] = incident_id
        self.last_event_id = last_event_id
        self._backoff = (backoff_base, backoff_max)
        self._idle_timeout = idle_timeout
        self._max_reconnects = max_reconnects
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._rand = rand
        self._closed = False
        self._response: aiohttp.ClientResponse | None = None
        self._live = False

    def __aiter__(self) -> AsyncIterator[Envelope | StreamReset]:
        return self._envelopes()

    async def _envelopes(self) -> AsyncIterator[Envelope | StreamReset]:
        async for item in self.raw():
            yield item if isinstance(item, StreamReset) else item.envelope()

    async def raw(self) -> AsyncIterator[RawEvent | StreamReset]:
        failures = 0
        while not self._closed:
            error: BaseException | None = None
            self._live = False
            try:
                async with contextlib.aclosing(self._connection()) as connection:
                    async for item in connection:
                        yield item
            except CauseFlowAPIError as exc:
                if not _retryable(exc.status):
                    raise
                error = exc
            except (aiohttp.ClientError, TimeoutError, CauseFlowConnectionError) as exc:
                error = exc
            finally:
                await self._release()
            if self._closed:
                return
            if self._live:
                failures = 0  # it was up: the backoff starts over
            if error is not None and self._max_reconnects is not None:
                if failures >= self._max_reconnects:
                    if isinstance(error, CauseFlowError):
                        raise error
                    raise CauseFlowConnectionError(f"stream lost: {error}") from error
            delay = reconnect_delay(
                failures, base=self._backoff[0], cap=self._backoff[1], jitter=self._rand()
            )
            if isinstance(error, CauseFlowAPIError) and error.retry_after is not None:
                delay = max(delay, min(error.retry_after, self._backoff[1]))
            failures += 1
            if self._on_disconnect is not None:
                self._on_disconnect(error, delay)
            await asyncio.sleep(delay)

    async def _connection(self) -> AsyncGenerator[RawEvent | StreamReset, None]:
        headers = {**self._t.headers, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._t.timeout, sock_read=self._idle_timeout
        )
        response = await self._t.session().get(
            self._t.url(STREAM_PATH),
            params=self._params,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        )
        self._response = response
        if response.status != 200:
            body = await response.read()
            raise api_error(response.status, body, response.headers)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        parser = SseParser()
        announced = False
        async for chunk in response.content.iter_any():
            if not announced:
                # The first bytes (retry + comment) mean the stream is live on the server.
                announced = True
                self._live = True
                if self._on_connect is not None:
                    self._on_connect(self.last_event_id)
            for frame in parser.feed(decoder.decode(chunk)):
                if frame.event == "reset":
                    yield _reset(frame.data, self.last_event_id)
                elif frame.event == "ping" or frame.id is None:
                    continue
                else:
                    self.last_event_id = frame.id
                    yield RawEvent(id=frame.id, event=frame.event, data=frame.data)
                if self._closed:
                    return

    async def _release(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()

    async def close(self) -> None:
        """Stop: the current connection is closed and iteration ends."""
        self._closed = True
        await self._release()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _reset(data: str, fallback: str | None) -> StreamReset:
    with contextlib.suppress(orjson.JSONDecodeError):
        parsed = orjson.loads(data)
        if isinstance(parsed, dict):
            return StreamReset(
                reason=str(parsed.get("reason") or "reset"),
                last_event_id=parsed.get("lastEventId") or fallback,
            )
    return StreamReset(reason="reset", last_event_id=fallback)

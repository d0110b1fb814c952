"""A test client for `text/event-stream`, parsing the wire format as the WHATWG spec says.

`SseParser` is the pure core (feed text, get events); `SseStream` and `sse_events` read a live
response with aiohttp. The parser also keeps what a browser would not expose but tests check:
comments, the `retry:` value, and whether a frame carried its own `id:`.
"""

from __future__ import annotations

import asyncio
import codecs
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
import orjson

# A line ends at CRLF, LF or CR (the spec's end-of-line), whichever comes first.
_EOL = re.compile(r"\r\n|\r|\n")


@dataclass
class SseEvent:
    id: str | None  # the `id:` field of this frame, None when it had none
    event: str  # "message" when the frame had no `event:` field
    data: str
    # The stream's last event id after this frame (what a browser reports and resends).
    last_event_id: str = ""

    def json(self) -> Any:
        return orjson.loads(self.data)


@dataclass
class SseParser:
    """Incremental parser: `feed` text as it arrives, get the events it completes."""

    retry: int | None = None
    comments: list[str] = field(default_factory=list)
    last_event_id: str = ""
    _buffer: str = ""
    _started: bool = False
    _after_cr: bool = False
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _frame_id: str | None = None

    def feed(self, text: str) -> list[SseEvent]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")  # one BOM at the very start is ignored
        if self._after_cr and text:
            self._after_cr = False
            text = text.removeprefix("\n")  # the LF of a CRLF split across two chunks
        buffer = self._buffer + text
        events: list[SseEvent] = []
        pos = 0
        while (match := _EOL.search(buffer, pos)) is not None:
            if match.group() == "\r" and match.end() == len(buffer):
                self._after_cr = True
            self._line(buffer[pos : match.start()], events)
            pos = match.end()
        self._buffer = buffer[pos:]
        return events

    def _line(self, line: str, events: list[SseEvent]) -> None:
        if line == "":
            self._dispatch(events)
            return
        if line.startswith(":"):
            self.comments.append(line[1:].removeprefix(" "))
            return
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
                self._frame_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        # Any other field name is ignored.

    def _dispatch(self, events: list[SseEvent]) -> None:
        data, event, frame_id = self._data, self._event, self._frame_id
        self._data, self._event, self._frame_id = [], "", None
        if not data:  # a frame without data is not an event (its id still counts)
            return
        events.append(
            SseEvent(
                id=frame_id,
                event=event or "message",
                data="\n".join(data),
                last_event_id=self.last_event_id,
            )
        )


def parse_sse(text: str) -> list[SseEvent]:
    """Every complete event in `text`; a trailing frame without its blank line is dropped."""
    return SseParser().feed(text)


class SseHttpError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"stream answered {status}: {body[:500]}")
        self.status = status
        self.body = body


class SseStream:
    """One open stream: `async with SseStream(...) as s`, then `await s.next()` or `async for`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: Mapping[str, str] | None = None,
        last_event_id: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> None:
        self._session = session
        self._url = url
        self._headers = {"Accept": "text/event-stream", **(headers or {})}
        if last_event_id is not None:
            self._headers["Last-Event-ID"] = last_event_id
        self._params = dict(params or {})
        self.parser = SseParser()
        self._pending: deque[SseEvent] = deque()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._response: aiohttp.ClientResponse | None = None
        self.ended = False

    @property
    def response(self) -> aiohttp.ClientResponse:
        if self._response is None:
            raise RuntimeError("stream not open")
        return self._response

    async def open(self) -> SseStream:
        # No read timeout: a quiet stream is normal; callers bound waits with next(timeout=...).
        response = await self._session.get(
            self._url,
            headers=self._headers,
            params=self._params,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        if response.status != 200:
            body = await response.text(errors="replace")
            response.release()
            raise SseHttpError(response.status, body)
        self._response = response
        return self

    async def close(self) -> None:
        if self._response is not None:
            self._response.close()

    async def __aenter__(self) -> SseStream:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def next(self, timeout: float | None = 10) -> SseEvent:
        """The next event; TimeoutError after `timeout`, EOFError once the server ended it."""
        async with asyncio.timeout(timeout):
            while not self._pending:
                if self.ended:
                    raise EOFError("event stream ended")
                chunk = await self.response.content.readany()
                if not chunk:
                    self.ended = True
                    self._pending.extend(self.parser.feed(self._decoder.decode(b"", final=True)))
                    continue
                self._pending.extend(self.parser.feed(self._decoder.decode(chunk)))
        return self._pending.popleft()

    async def collect(self, count: int, timeout: float = 10) -> list[SseEvent]:
        """The next `count` events, all within `timeout`."""
        async with asyncio.timeout(timeout):
            return [await self.next(timeout=None) for _ in range(count)]

    def __aiter__(self) -> SseStream:
        return self

    async def __anext__(self) -> SseEvent:
        try:
            return await self.next(timeout=None)
        except EOFError:
            raise StopAsyncIteration from None


async def sse_events(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str] | None = None,
    last_event_id: str | None = None,
    params: Mapping[str, str] | None = None,
) -> AsyncIterator[SseEvent]:
    """Yield the stream's events (pings and resets included) until the server ends it.

    Close it with `contextlib.aclosing` when leaving early; raises SseHttpError on a non-200.
    """
    async with SseStream(session, url, headers, last_event_id, params) as stream:
        while True:
            try:
                event = await stream.next(timeout=None)
            except EOFError:
                return
            yield event

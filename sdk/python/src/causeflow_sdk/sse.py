"""The Server-Sent Events wire format as a client reads it, and the reconnect delay (pure).

`SseParser` follows the WHATWG event-stream rules: lines end at CRLF, LF or CR; `:` starts a
comment; `data:` lines join with LF; a blank line dispatches; `id:` sets the last event id;
`retry:` the reconnection time. `reconnect_delay` is capped exponential backoff with jitter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_EOL = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SseFrame:
    """One dispatched event: `id` is this frame's own `id:` (None when it had none)."""

    event: str
    data: str
    id: str | None = None


@dataclass
class SseParser:
    """Incremental: `feed` decoded text as it arrives, get back the frames it completes."""

    retry_ms: int | None = None
    _buffer: str = ""
    _after_cr: bool = False
    _started: bool = False
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _id: str | None = None

    def feed(self, text: str) -> list[SseFrame]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._after_cr and text:
            # A CRLF split across two chunks: the LF belongs to the CR already seen.
            self._after_cr = False
            text = text.removeprefix("\n")
        buffer = self._buffer + text
        frames: list[SseFrame] = []
        pos = 0
        while (match := _EOL.search(buffer, pos)) is not None:
            if match.group() == "\r" and match.end() == len(buffer):
                self._after_cr = True
            self._line(buffer[pos : match.start()], frames)
            pos = match.end()
        self._buffer = buffer[pos:]
        return frames

    def _line(self, line: str, frames: list[SseFrame]) -> None:
        if not line:
            data, event, frame_id = self._data, self._event, self._id
            self._data, self._event, self._id = [], "", None
            if data:  # a frame without data dispatches nothing
                frames.append(SseFrame(event=event or "message", data="\n".join(data), id=frame_id))
            return
        if line.startswith(":"):
            return
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)


def reconnect_delay(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait before reconnect number `attempt` (0 for the first after a drop).

    `base * 2**attempt`, at most `cap`, scaled by `jitter` in [0, 1] to between half and all
    of it, so that clients dropped together by a restart do not come back in one wave.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be within [0, 1]")
    raw = min(cap, base * (2.0 ** min(attempt, 32)))
    return raw * (0.5 + 0.5 * jitter)

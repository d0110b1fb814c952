"""Server-Sent Events wire format for the notification stream (pure: no I/O, no clock).

Frames are bytes built once per event and shared by every connection that sends them. The
envelope is one line of JSON (orjson escapes newlines inside strings); anything with a line
break is still split into several `data:` lines so a client never misreads a frame.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from causeflow.jsonutil import dumps

CONTENT_TYPE = b"text/event-stream; charset=utf-8"
RESPONSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", CONTENT_TYPE),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)

PING = b"event: ping\ndata: {}\n\n"
RESET_CURSOR_EXPIRED = "cursor_expired"
RESET_TOO_FAR_BEHIND = "too_far_behind"

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field(name: str, value: str) -> str:
    # A field value may not contain a line break: it would end the field early.
    return "".join(f"{name}: {line}\n" for line in _LINE_BREAK.split(value))


def preamble(retry_ms: int, comment: str = "stream open") -> bytes:
    """The first bytes of every stream: the reconnect delay and a comment line."""
    return f"retry: {int(retry_ms)}\n: {comment}\n\n".encode()


def comment(text: str) -> bytes:
    """A comment frame: clients ignore it (used to say why a stream ends)."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)).encode() + b"\n"


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of a chunked response body carrying `data`."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


class Frame(NamedTuple):
    """A frame as SSE bytes and as a ready HTTP chunk, both built once and shared."""

    raw: bytes
    chunk: bytes

    @classmethod
    def of(cls, raw: bytes) -> Frame:
        return cls(raw, chunk(raw))


def event_frame(event_id: str, event_type: str, envelope: str) -> bytes:
    """`id`, `event`, `data` (the stored envelope, byte for byte) and the blank line."""
    if "\n" in event_id or "\r" in event_id or "\n" in event_type or "\r" in event_type:
        raise ValueError("event ids and types are single-line")
    if "\n" in envelope or "\r" in envelope:
        return f"id: {event_id}\nevent: {event_type}\n{_field('data', envelope)}\n".encode()
    return f"id: {event_id}\nevent: {event_type}\ndata: {envelope}\n\n".encode()


def reset_frame(reason: str, last_event_id: str) -> bytes:
    """Tells the client its cursor cannot be resumed and it should refetch state.

    It carries no `id`, so a client that drops before the next event resends the old id and
    is told again, rather than silently resuming from the head.
    """
    data = dumps({"reason": reason, "lastEventId": last_event_id}).decode()
    return f"event: reset\ndata: {data}\n\n".encode()


def parse_types(value: str | None) -> frozenset[str] | None:
    """`?events=a,b` -> {"a", "b"}; empty or absent -> None (every type)."""
    if not value:
        return None
    types = frozenset(t.strip() for t in value.split(",") if t.strip())
    return types or None


def matches(
    event_type: str,
    incident_id: str | None,
    types: frozenset[str] | None,
    want_incident: str | None,
) -> bool:
    """Whether an event passes a connection's `?events=` and `?incidentId=` filters."""
    if types is not None and event_type not in types:
        return False
    return want_incident is None or incident_id == want_incident


PING_FRAME = Frame.of(PING)

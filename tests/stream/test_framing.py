"""SSE framing from tables, checked by the WHATWG parser the clients use."""

from __future__ import annotations

import orjson
import pytest

from causeflow.stream.framing import (
    PING,
    PING_FRAME,
    Frame,
    chunk,
    comment,
    event_frame,
    matches,
    parse_types,
    preamble,
    reset_frame,
)
from tests.support.sse import SseParser, parse_sse

pytestmark = pytest.mark.unit

ENVELOPE = '{"id":"evt_1","event":"incident.created","data":{"title":"disk \\u2028 full\\n"}}'


def test_event_frame_is_id_event_data_and_a_blank_line() -> None:
    frame = event_frame("evt_1", "incident.created", ENVELOPE)
    assert frame == f"id: evt_1\nevent: incident.created\ndata: {ENVELOPE}\n\n".encode()
    [event] = parse_sse(frame.decode())
    assert (event.id, event.event, event.data) == ("evt_1", "incident.created", ENVELOPE)


@pytest.mark.parametrize(
    "envelope",
    ["a\nb", "a\r\nb", "a\rb", "\n", "x\n\ny"],
    ids=["lf", "crlf", "cr", "lone", "blank"],
)
def test_a_line_break_in_data_never_breaks_the_frame(envelope: str) -> None:
    [event] = parse_sse(event_frame("evt_1", "t", envelope).decode())
    # The parser joins data lines with LF: the text survives up to the line-end spelling.
    assert event.data == envelope.replace("\r\n", "\n").replace("\r", "\n")
    assert event.id == "evt_1"


@pytest.mark.parametrize("bad", [("evt\n1", "t"), ("evt_1", "a\rb")])
def test_ids_and_types_must_be_single_line(bad: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        event_frame(bad[0], bad[1], "{}")


def test_preamble_sets_retry_and_carries_a_comment_but_no_event() -> None:
    parser = SseParser()
    assert parser.feed(preamble(3000).decode()) == []
    assert parser.retry == 3000
    assert parser.comments == ["stream open"]


def test_ping_and_reset_frames() -> None:
    [ping] = parse_sse(PING.decode())
    assert (ping.event, ping.data, ping.id) == ("ping", "{}", None)
    [reset] = parse_sse(reset_frame("cursor_expired", "evt_x").decode())
    assert reset.event == "reset" and reset.id is None
    assert orjson.loads(reset.data) == {"reason": "cursor_expired", "lastEventId": "evt_x"}


def test_comment_frames_dispatch_nothing() -> None:
    parser = SseParser()
    assert parser.feed(comment("bye\nnow").decode()) == []
    assert parser.comments == ["bye", "now"]


@pytest.mark.parametrize(
    ("data", "wire"),
    [(b"", b"0\r\n\r\n"), (b"abc", b"3\r\nabc\r\n"), (b"x" * 26, b"1a\r\n" + b"x" * 26 + b"\r\n")],
)
def test_http_chunks(data: bytes, wire: bytes) -> None:
    assert chunk(data) == wire
    assert Frame.of(data) == (data, wire)
    assert PING_FRAME.raw == PING


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (" , ", None),
        ("incident.created", frozenset({"incident.created"})),
        ("a, b,,a", frozenset({"a", "b"})),
    ],
)
def test_parse_types(value: str | None, expected: frozenset[str] | None) -> None:
    assert parse_types(value) == expected


@pytest.mark.parametrize(
    ("event_type", "incident", "types", "want", "ok"),
    [
        ("a", None, None, None, True),
        ("a", "inc_1", frozenset({"a"}), None, True),
        ("b", "inc_1", frozenset({"a"}), None, False),
        ("a", "inc_1", None, "inc_1", True),
        ("a", "inc_2", None, "inc_1", False),
        ("a", None, None, "inc_1", False),
        ("a", "inc_1", frozenset({"a", "b"}), "inc_1", True),
        ("c", "inc_1", frozenset({"a", "b"}), "inc_1", False),
    ],
)
def test_filters(
    event_type: str, incident: str | None, types: frozenset[str] | None, want: str | None, ok: bool
) -> None:
    assert matches(event_type, incident, types, want) is ok

"""SSE framing as properties: whatever text goes in, a frame's line structure is the one the
service meant, and every frame ends with exactly one blank line."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causeflow.stream.framing import RESPONSE_HEADERS, comment, event_frame
from tests.support.sse import SseParser, parse_sse

pytestmark = pytest.mark.unit

# Text with plenty of line breaks in every spelling, and single-line text.
MULTILINE = st.lists(st.sampled_from(["a", "é", " ", ":", "\r", "\n", "\r\n", "{"])).map("".join)
SINGLE_LINE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    min_size=1,
)
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def lines_of(frame: bytes) -> list[str]:
    """The frame's lines, which must all end in LF and never carry a CR."""
    text = frame.decode()
    assert "\r" not in text
    assert text.endswith("\n\n") and not text.endswith("\n\n\n")
    return text[:-2].split("\n")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(SINGLE_LINE, SINGLE_LINE, MULTILINE)
def test_a_frame_never_contains_a_bare_cr_or_lf_from_its_inputs(
    event_id: str, event_type: str, envelope: str
) -> None:
    frame = event_frame(event_id, event_type, envelope)
    lines = lines_of(frame)
    assert lines[:2] == [f"id: {event_id}", f"event: {event_type}"]
    data = lines[2:]
    assert data == [f"data: {line}" for line in LINE_BREAK.split(envelope)]
    [event] = parse_sse(frame.decode())
    assert (event.id, event.event) == (event_id, event_type)
    assert event.data == "\n".join(LINE_BREAK.split(envelope))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(MULTILINE)
def test_a_comment_is_comment_lines_only_whatever_its_text(text: str) -> None:
    frame = comment(text)
    assert lines_of(frame) == [f": {line}" for line in LINE_BREAK.split(text)]
    parser = SseParser()
    assert parser.feed(frame.decode()) == []
    assert parser.comments == LINE_BREAK.split(text)


@pytest.mark.parametrize(
    ("event_id", "event_type"),
    [("a\nb", "t"), ("a\rb", "t"), ("a", "t\nu"), ("a", "t\ru"), ("a\r\nb", "t")],
)
def test_a_line_break_in_an_id_or_a_type_is_refused(event_id: str, event_type: str) -> None:
    with pytest.raises(ValueError) as info:
        event_frame(event_id, event_type, "{}")
    assert str(info.value) == "event ids and types are single-line"


def test_the_stream_response_is_uncached_unbuffered_utf8_event_stream() -> None:
    assert RESPONSE_HEADERS == (
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
    )

"""The client-side SSE parser and the reconnect backoff (pure)."""

from __future__ import annotations

import pytest

from causeflow_sdk.sse import SseFrame, SseParser, reconnect_delay

pytestmark = pytest.mark.unit


def feed_all(chunks: list[str]) -> tuple[list[SseFrame], SseParser]:
    parser = SseParser()
    frames: list[SseFrame] = []
    for chunk in chunks:
        frames += parser.feed(chunk)
    return frames, parser


STREAM = (
    "retry: 3000\n: stream open\n\n"
    'id: evt_1\nevent: incident.created\ndata: {"id":"evt_1"}\n\n'
    "event: ping\ndata: {}\n\n"
    'event: reset\ndata: {"reason":"cursor_expired","lastEventId":"evt_0"}\n\n'
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_frames_survive_any_chunking(size: int) -> None:
    frames, parser = feed_all([STREAM[i : i + size] for i in range(0, len(STREAM), size)])
    assert frames == [
        SseFrame(event="incident.created", data='{"id":"evt_1"}', id="evt_1"),
        SseFrame(event="ping", data="{}"),
        SseFrame(event="reset", data='{"reason":"cursor_expired","lastEventId":"evt_0"}'),
    ]
    assert parser.retry_ms == 3000


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_every_line_ending(eol: str) -> None:
    text = f"id: evt_9{eol}event: x{eol}data: a{eol}data: b{eol}{eol}"
    frames, _ = feed_all(list(text))  # one character at a time splits CRLF pairs too
    assert frames == [SseFrame(event="x", data="a\nb", id="evt_9")]


def test_edge_cases() -> None:
    frames, _ = feed_all(["\ufeffdata:no-space\n\n", "id: only-id\n\n", "data: tail-without-blank"])
    assert frames == [SseFrame(event="message", data="no-space")]
    frames, _ = feed_all(["id: a\0b\ndata: x\n\n", "retry: soon\nunknown: y\ndata: z\n\n"])
    assert frames == [SseFrame(event="message", data="x"), SseFrame(event="message", data="z")]


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    full = [reconnect_delay(n, base=0.5, cap=10, jitter=1.0) for n in range(8)]
    assert full == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert reconnect_delay(3, base=0.5, cap=10, jitter=0.0) == 2.0
    assert reconnect_delay(10_000, base=0.5, cap=30, jitter=0.5) == 22.5
    with pytest.raises(ValueError):
        reconnect_delay(-1, base=1, cap=1, jitter=0)
    with pytest.raises(ValueError):
        reconnect_delay(0, base=1, cap=1, jitter=1.5)

"""The SSE test client: the WHATWG wire format from a table, and live streams over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.support.sse import SseEvent, SseHttpError, SseParser, SseStream, parse_sse, sse_events


def ev(
    data: str, event: str = "message", id: str | None = None, last: str | None = None
) -> SseEvent:
    return SseEvent(id=id, event=event, data=data, last_event_id=last if last is not None else "")


PARSE_TABLE = [
    ("single data line", "data: hi\n\n", [ev("hi")]),
    ("no space after colon", "data:hi\n\n", [ev("hi")]),
    ("only one leading space is removed", "data:  two\n\n", [ev(" two")]),
    ("multi-line data joins with LF", "data: a\ndata: b\ndata\n\n", [ev("a\nb\n")]),
    ("field without colon is an empty value", "data\n\n", [ev("")]),
    ("CRLF line ends", "event: ping\r\ndata: {}\r\n\r\n", [ev("{}", "ping")]),
    ("bare CR line ends", "id: 1\rdata: x\r\r", [ev("x", id="1", last="1")]),
    ("mixed line ends", "data: a\r\ndata: b\rdata: c\n\n", [ev("a\nb\nc")]),
    ("comments are not events", ": hello\n\n: again\ndata: x\n\n", [ev("x")]),
    ("retry alone dispatches nothing", "retry: 3000\n: open\n\n", []),
    ("frame without data is dropped", "event: ping\n\n", []),
    ("unknown fields are ignored", "foo: bar\ndata: x\n\n", [ev("x")]),
    ("colon inside the value stays", "data: a: b\n\n", [ev("a: b")]),
    ("leading BOM is skipped", "\ufeffdata: x\n\n", [ev("x")]),
    ("incomplete last frame is discarded", "data: a\n\ndata: b\n", [ev("a")]),
    ("unterminated last line is discarded", "data: a\n\ndata: b", [ev("a")]),
    (
        "event type resets after each frame",
        "event: reset\ndata: {}\n\ndata: y\n\n",
        [ev("{}", "reset"), ev("y")],
    ),
    (
        "last event id persists; id only on its own frame",
        "id: evt_1\nevent: incident.created\ndata: {}\n\nevent: ping\ndata: {}\n\n",
        [
            ev("{}", "incident.created", id="evt_1", last="evt_1"),
            ev("{}", "ping", last="evt_1"),
        ],
    ),
    (
        "empty id clears the last event id",
        "id: a\ndata: 1\n\nid\ndata: 2\n\n",
        [
            ev("1", id="a", last="a"),
            ev("2", id="", last=""),
        ],
    ),
    ("id with NUL is ignored", "id: a\0b\ndata: x\n\n", [ev("x")]),
    ("id without data still counts for later frames", "id: 7\n\ndata: x\n\n", [ev("x", last="7")]),
    ("field names are case-sensitive", "Data: x\nDATA: y\n\n", []),
]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("wire", "expected"),
    [(w, e) for _, w, e in PARSE_TABLE],
    ids=[name for name, _, _ in PARSE_TABLE],
)
def test_parse_sse_table(wire: str, expected: list[SseEvent]) -> None:
    assert parse_sse(wire) == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("wire", "retry"),
    [("retry: 3000\n", 3000), ("retry: 12a\n", None), ("retry:\n", None), ("retry: -1\n", None)],
)
def test_retry_field(wire: str, retry: int | None) -> None:
    parser = SseParser()
    parser.feed(wire)
    assert parser.retry == retry


@pytest.mark.unit
def test_comments_are_kept_for_inspection() -> None:
    parser = SseParser()
    parser.feed(": stream open\n:no-space\n")
    assert parser.comments == ["stream open", "no-space"]


@pytest.mark.unit
def test_feeding_any_split_gives_the_same_events() -> None:
    wire = (
        "\ufeffretry: 3000\r\n: hi\r\n\r\n"
        "id: evt_1\r\nevent: a\r\ndata: x\r\ndata: y\r\r\ndata: z\n\n"
    )
    whole = parse_sse(wire)
    assert [e.data for e in whole] == ["x\ny", "z"]
    for cut in range(len(wire) + 1):
        parser = SseParser()
        events = parser.feed(wire[:cut]) + parser.feed("") + parser.feed(wire[cut:])
        assert events == whole, f"split at {cut}"
        assert parser.retry == 3000


@pytest.mark.unit
def test_event_json() -> None:
    assert parse_sse('data: {"a": [1, 2]}\n\n')[0].json() == {"a": [1, 2]}


# --- live streams ---------------------------------------------------------------------------

FRAMES = (
    "retry: 3000\n: connected\n\n"
    'id: evt_1\nevent: incident.created\ndata: {"title": "disk full é"}\n\n'
    "event: ping\ndata: {}\n\n"
)


@pytest.fixture
async def sse_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def stream(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        raw = FRAMES.encode()
        # Awkward chunks: one byte at a time through the multi-byte character.
        for i in range(len(raw)):
            await response.write(raw[i : i + 1])
        if request.query.get("hold"):
            await asyncio.sleep(3600)
        return response

    async def denied(request: web.Request) -> web.Response:
        return web.json_response({"error": "unauthorized"}, status=401)

    app = web.Application()
    app.router.add_get("/stream", stream)
    app.router.add_get("/denied", denied)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", seen
    finally:
        await runner.cleanup()


@pytest.mark.integration
async def test_sse_events_reads_a_live_stream(
    sse_server: tuple[str, list[dict[str, str]]],
) -> None:
    base, seen = sse_server
    async with aiohttp.ClientSession() as session:
        events = [
            e async for e in sse_events(session, base + "/stream", headers={"X-Api-Key": "k"})
        ]
    assert events == [
        ev('{"title": "disk full é"}', "incident.created", id="evt_1", last="evt_1"),
        ev("{}", "ping", last="evt_1"),
    ]
    assert seen[0]["Accept"] == "text/event-stream"
    assert seen[0]["X-Api-Key"] == "k"
    assert "Last-Event-ID" not in seen[0]


@pytest.mark.integration
async def test_sse_stream_next_resume_header_and_timeout(
    sse_server: tuple[str, list[dict[str, str]]],
) -> None:
    base, seen = sse_server
    async with aiohttp.ClientSession() as session:
        async with SseStream(
            session, base + "/stream", last_event_id="evt_0", params={"hold": "1"}
        ) as stream:
            assert stream.response.headers["Content-Type"] == "text/event-stream"
            first = await stream.next(timeout=5)
            assert first.id == "evt_1" and first.json() == {"title": "disk full é"}
            assert (await stream.next(timeout=5)).event == "ping"
            assert stream.parser.retry == 3000
            assert stream.parser.comments == ["connected"]
            with pytest.raises(TimeoutError):
                await stream.next(timeout=0.2)
    assert seen[0]["Last-Event-ID"] == "evt_0"


@pytest.mark.integration
async def test_collect_and_end_of_stream(sse_server: tuple[str, list[dict[str, str]]]) -> None:
    base, _ = sse_server
    async with aiohttp.ClientSession() as session, SseStream(session, base + "/stream") as stream:
        assert [e.event for e in await stream.collect(2)] == ["incident.created", "ping"]
        with pytest.raises(EOFError):
            await stream.next(timeout=5)


@pytest.mark.integration
async def test_leaving_early_closes_the_stream(
    sse_server: tuple[str, list[dict[str, str]]],
) -> None:
    base, _ = sse_server
    async with aiohttp.ClientSession() as session:
        events = sse_events(session, base + "/stream", params={"hold": "1"})
        async with contextlib.aclosing(events):
            async for event in events:
                assert event.id == "evt_1"
                break


@pytest.mark.integration
async def test_non_200_raises_with_status_and_body(
    sse_server: tuple[str, list[dict[str, str]]],
) -> None:
    base, _ = sse_server
    async with aiohttp.ClientSession() as session:
        with pytest.raises(SseHttpError) as caught:
            async for _ in sse_events(session, base + "/denied"):
                pass
    assert caught.value.status == 401
    assert "unauthorized" in caught.value.body

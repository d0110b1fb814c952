"""A tenant feed's delivery of one page of the log, from tables: filters, the seam, batching."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from causeflow.auth.principal import Principal
from causeflow.event.log import StoredEvent
from causeflow.stream.connection import Connection
from causeflow.stream.framing import Frame, event_frame
from causeflow.stream.hub import TenantFeed

pytestmark = pytest.mark.unit


@dataclass
class Recorder:
    """A sink that keeps what it is given (and can be made to refuse, like a full buffer)."""

    limit: int = 1000
    writes: list[tuple[Frame, int]] = field(default_factory=list)
    aborted: bool = False

    @property
    def gone(self) -> bool:
        return self.aborted

    @property
    def pending(self) -> int:
        return sum(count for _, count in self.writes)

    def write(self, frame: Frame, count: int = 1) -> bool:
        if self.pending + count > self.limit:
            return False
        self.writes.append((frame, count))
        return True

    def abort(self) -> None:
        self.aborted = True

    def end(self, why: str) -> None:
        self.aborted = True


INC = "inc_01M86BHTRK6CQ643DZVMXXQKFB"
PAGE = [
    StoredEvent(f"evt_{n}", "ten_1", n, etype, inc, 0, f'{{"id":"evt_{n}"}}')
    for n, etype, inc in [
        (11, "incident.created", INC),
        (12, "incident.status_changed", INC),
        (13, "incident.created", None),
        (14, "tenant.updated", None),
    ]
]


def _live(
    feed: TenantFeed,
    cursor: int = 10,
    types: frozenset[str] | None = None,
    incident: str | None = None,
    limit: int = 1000,
) -> Recorder:
    conn = Connection(Principal("user", "usr_1", "ten_1"), types, incident)
    sink = Recorder(limit)
    conn.sink = sink  # type: ignore[assignment]
    feed.members.add(conn)
    feed.go_live(conn, cursor)
    return sink


def _ids(sink: Recorder) -> list[int]:
    return [
        int(line[8:])
        for f, _ in sink.writes
        for line in f.raw.decode().splitlines()
        if line.startswith("id: evt_")
    ]


@pytest.mark.parametrize(
    ("types", "incident", "cursor", "expected"),
    [
        (None, None, 10, [11, 12, 13, 14]),
        (frozenset({"incident.created"}), None, 10, [11, 13]),
        (None, INC, 10, [11, 12]),
        (frozenset({"incident.status_changed"}), INC, 10, [12]),
        (frozenset({"user.created"}), None, 10, []),
        (None, None, 12, [13, 14]),  # joined mid-page: what it replayed is not sent again
        (None, None, 14, []),
        (frozenset({"incident.created"}), None, 11, [13]),
    ],
)
async def test_each_connection_gets_its_matching_events_after_its_cursor_in_one_write(
    types: frozenset[str] | None, incident: str | None, cursor: int, expected: list[int]
) -> None:
    feed = TenantFeed(None, "ten_1")  # type: ignore[arg-type]
    sink = _live(feed, cursor, types, incident)
    await feed.deliver(PAGE)
    assert _ids(sink) == expected
    assert len(sink.writes) == (1 if expected else 0)
    if expected:
        assert sink.writes[0][1] == len(expected)
    assert feed.position == 14


async def test_frames_are_encoded_once_and_shared() -> None:
    feed = TenantFeed(None, "ten_1")  # type: ignore[arg-type]
    a, b = _live(feed), _live(feed)
    c = _live(feed, types=frozenset({"incident.created"}))
    await feed.deliver(PAGE)
    assert a.writes[0][0] is b.writes[0][0]  # the same bytes object for the same filters
    expected = b"".join(event_frame(e.id, e.type, e.envelope) for e in PAGE)
    assert a.writes[0][0].raw == expected
    assert _ids(c) == [11, 13]


async def test_a_connection_over_its_bound_is_dropped_and_the_others_are_not() -> None:
    feed = TenantFeed(None, "ten_1")  # type: ignore[arg-type]
    small, big = _live(feed, limit=3), _live(feed)
    await feed.deliver(PAGE)
    assert small.aborted and small.writes == []
    assert not big.aborted and _ids(big) == [11, 12, 13, 14]
    [dropped] = [c for c in feed.members if c.sink is small]
    assert dropped.closed == "overflow"


async def test_connections_not_yet_live_get_nothing() -> None:
    feed = TenantFeed(None, "ten_1")  # type: ignore[arg-type]
    waiting = Connection(Principal("user", "usr_1", "ten_1"), None, None)
    sink = Recorder()
    waiting.sink = sink  # type: ignore[assignment]
    feed.members.add(waiting)  # registered, still replaying
    await feed.deliver(PAGE)
    assert sink.writes == []
    assert feed.position == 14


async def test_a_stream_joining_while_a_page_is_written_starts_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import causeflow.stream.hub as hub_module

    monkeypatch.setattr(hub_module, "WRITES_PER_SLICE", 2)  # yield after every 2 sockets
    feed = TenantFeed(None, "ten_1")  # type: ignore[arg-type]
    early = [_live(feed) for _ in range(6)]
    delivering = asyncio.ensure_future(feed.deliver(PAGE))
    await asyncio.sleep(0)  # the page is half written
    assert feed.position == 14  # already past it
    late = _live(feed, cursor=feed.position)  # what a new stream does: live from here
    await delivering
    assert all(_ids(sink) == [11, 12, 13, 14] for sink in early)
    assert late.writes == []
    await feed.deliver([StoredEvent("evt_15", "ten_1", 15, "user.created", None, 0, "{}")])
    assert _ids(late) == [15]

"""Traffic that keeps flowing while processes die: publishers that fail over between API nodes,
and stream clients that resume on another node with `Last-Event-ID`, as a client behind a load
balancer would. Each records what it saw, for the tests to compare with the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field

import aiohttp

from causeflow_sdk.models import sample_data
from tests.support.sse import SseHttpError, SseStream

from .cluster import EVENT, TIMEOUT

STREAM = "/v1/notifications/stream"
SHUTDOWN_COMMENT = "server shutting down; reconnect"
# What a request to a node that is dying or down raises (refused, reset, cut mid-body).
DOWN = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


@dataclass
class Publisher:
    """POSTs events one after another, round-robin over `bases`; a node that refuses or breaks
    the request is skipped for the next one. Only a 201 counts as accepted (a request cut by a
    crash may or may not have committed: the log says which)."""

    session: aiohttp.ClientSession
    bases: list[str]
    headers: dict[str, str]
    name: str = "p"
    pause: float = 0.01
    accepted: list[str] = field(default_factory=list)
    failed: int = 0
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            base = self.bases[next(self._turn) % len(self.bases)]
            body = {"event": EVENT, "data": sample_data(EVENT, title=f"{self.name}-{n}")}
            try:
                async with self.session.post(
                    base + "/v1/events", json=body, headers=self.headers, timeout=TIMEOUT
                ) as resp:
                    payload = await resp.json()
                    if resp.status == 201:
                        self.accepted.append(payload["id"])
                        n += 1
                    else:
                        assert resp.status == 503, (resp.status, payload)
                        self.failed += 1
            except DOWN:
                self.failed += 1
            await asyncio.sleep(self.pause)


@dataclass
class ResumingReader:
    """One stream client: connected to `bases[start]`, and whenever its stream ends (cleanly, or
    cut by a crash) reconnected to the next node with the last id it saw."""

    session: aiohttp.ClientSession
    bases: list[str]
    headers: dict[str, str]
    start: int
    last_event_id: str | None = None
    ids: list[str] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)
    connected_to: list[str] = field(default_factory=list)
    clean_ends: int = 0  # ended by the server with its shutdown comment
    cut: int = 0  # broken mid-stream (a crash)
    refused: int = 0  # connection attempts that failed (the node is down)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event) -> None:
        for turn in itertools.count(self.start):
            if stop.is_set():
                return
            base = self.bases[turn % len(self.bases)]
            stream = SseStream(self.session, base + STREAM, self.headers, self.last_event_id)
            try:
                await stream.open()
            except (SseHttpError, *DOWN):
                self.refused += 1
                await asyncio.sleep(0.05)
                continue
            self.connected_to.append(base)
            self.connected.set()
            try:
                await self._read(stream, stop)
            finally:
                await stream.close()

    async def _read(self, stream: SseStream, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                event = await stream.next(timeout=0.2)
            except TimeoutError:
                continue
            except EOFError:
                if SHUTDOWN_COMMENT in stream.parser.comments:
                    self.clean_ends += 1
                else:
                    self.cut += 1
                return
            except DOWN:
                self.cut += 1
                return
            if event.event == "ping":
                continue
            if event.event == "reset":
                self.resets.append(event.data)
                continue
            assert event.id is not None, event
            self.ids.append(event.id)
            self.last_event_id = event.id

    async def caught_up(self, expected: list[str], timeout: float = 20) -> None:
        """Wait until it has seen as many events as `expected` (or the timeout)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(self.ids) < len(expected):
                    await asyncio.sleep(0.05)


def run_all(stop: asyncio.Event, *actors: Publisher | ResumingReader) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(a.run(stop)) for a in actors]


async def finish(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Stop the actors and surface any error one of them raised."""
    stop.set()
    async with asyncio.timeout(15):
        results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]

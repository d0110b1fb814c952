"""`causeflow listen --forward-to URL`: the stream, forwarded to a local endpoint as deliveries.

Each event is POSTed as a real delivery would arrive: the envelope bytes from the stream's
`data:` as body, the delivery headers of `causeflow.webhook.signing`, signed with the local
secret of `devtools.secret`. `webhook-id` / `X-CauseFlow-Delivery` is `msg_` + the ULID body
of the event id (`evt_01J…` -> `msg_01J…`): stable across runs and replays, so a receiver's
de-duplication works as in production. No subscription is created: the developer's own machine
is the destination, so the SSRF rules of real deliveries do not apply. One line per event.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO
from urllib.parse import urlsplit

import aiohttp
import orjson

from causeflow import __version__
from causeflow.devtools import ToolError
from causeflow.webhook.signing import delivery_headers
from causeflow_sdk import AsyncClient, CauseFlowAPIError, RawEvent, StreamReset

# The timeouts and response cap of real deliveries (docs/reference.md §5.2).
CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
RESPONSE_CAP = 4096
# A developer restarting a local server wants `listen` back at once; polling every 2 s at
# worst costs nothing.
BACKOFF_MAX = 2.0


def local_msg_id(event_id: str) -> str:
    """The delivery id `listen` uses for an event: `msg_` + the event id's ULID body."""
    return "msg_" + event_id.split("_", 1)[-1]


@dataclass(frozen=True)
class Forwarded:
    status: int | None  # None when no HTTP answer came back
    latency_ms: int
    error: str | None = None


def event_line(event: RawEvent, result: Forwarded, url: str, test: bool, now: datetime) -> str:
    """`12:00:01  incident.created  evt_…  -> POST url [200] 12 ms` (pure)."""
    outcome = f"[{result.status}]" if result.status is not None else f"[ERR] {result.error}"
    marker = " (test)" if test else ""
    return (
        f"{now:%H:%M:%S}  {event.event}{marker}  {event.id}  -> POST {url} "
        f"{outcome} {result.latency_ms} ms"
    )


def check_forward_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(
            f"--forward-to needs an http(s) URL such as http://localhost:3000/hooks, not {url!r}"
        )
    return url


async def forward(
    session: aiohttp.ClientSession, url: str, event: RawEvent, secret: str, now: float
) -> Forwarded:
    """POST one event to `url` as a delivery; never raises for the receiver's failures."""
    body = event.data.encode("utf-8")
    headers = delivery_headers(
        event_type=event.event,
        msg_id=local_msg_id(event.id),
        timestamp=int(now),
        body=body,
        secrets=[secret],
        version=__version__,
    )
    started = time.monotonic()
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
            await resp.content.read(RESPONSE_CAP)
            status: int | None = resp.status
            error = None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        status, error = None, (str(exc) or type(exc).__name__)
    return Forwarded(status, int((time.monotonic() - started) * 1000), error)


def _is_test(event: RawEvent) -> bool:
    try:
        parsed = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and parsed.get("test") is True


@dataclass
class Listener:
    """One `listen` run: options, output streams, and the hooks the stream calls."""

    forward_to: str
    secret: str
    api_url: str
    api_key: str
    events: list[str] | None = None
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    backoff_base: float = 0.5
    clock: Callable[[], float] = time.time
    _connected_before: bool = field(default=False, init=False)

    def _say(self, text: str, *, err: bool = False) -> None:
        print(text, file=self.err if err else self.out, flush=True)

    def on_connect(self, last_event_id: str | None) -> None:
        if not self._connected_before:
            self._connected_before = True
            which = ", ".join(self.events) if self.events else "all events"
            self._say(f"Ready! Forwarding {which} from {self.api_url} to {self.forward_to}")
        else:
            after = f" after {last_event_id}" if last_event_id else ""
            self._say(f"Reconnected; resuming{after}", err=True)

    def on_disconnect(self, error: BaseException | None, delay: float) -> None:
        why = "the server ended the stream" if error is None else f"connection lost ({error})"
        self._say(f"{why}; reconnecting in {delay:.1f} s", err=True)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT)
        async with (
            AsyncClient(self.api_url, api_key=self.api_key) as client,
            aiohttp.ClientSession(timeout=timeout) as session,
        ):
            stream = client.stream(
                events=self.events,
                backoff_base=self.backoff_base,
                backoff_max=BACKOFF_MAX,
                on_connect=self.on_connect,
                on_disconnect=self.on_disconnect,
            )
            async with stream:
                async for item in stream.raw():
                    if isinstance(item, StreamReset):
                        self._say(
                            f"stream reset ({item.reason}): events may have been missed", err=True
                        )
                        continue
                    result = await forward(
                        session, self.forward_to, item, self.secret, self.clock()
                    )
                    line = event_line(item, result, self.forward_to, _is_test(item), datetime.now())
                    self._say(line)


async def run_listen(listener: Listener) -> int:
    """Run until SIGINT/SIGTERM (exit 0); a refused credential or filter is a ToolError."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    work = asyncio.create_task(listener.run())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stopper.cancel()
    if not work.done():
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        print("Stopped.", file=listener.err, flush=True)
        return 0
    try:
        work.result()
    except CauseFlowAPIError as exc:
        raise ToolError(f"{listener.api_url} refused the stream: {exc}") from exc
    return 0

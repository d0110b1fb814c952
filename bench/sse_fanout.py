"""SSE fan-out of one `causeflow serve` process: N open streams, events published at a steady rate.

Reports, as medians of several runs: streams connected, events lost, p50/p99 publish-to-receive
latency (from just before `POST /v1/events` to the frame's arrival at each client; `first_ms`
is the median wait until the first client has an event, `spread_ms` the median time from the
first client to the last), server memory per stream, (RSS with N streams - RSS idle) / N, and
the server's user and system CPU while publishing. Events are POSTed on a fixed schedule (an
open loop: a slow answer does not hold the next event back, so queueing shows as latency).
The same clients and publisher schedule are then pointed, in the same run, at two baselines:
a minimal aiohttp SSE server that fans the same envelopes out from memory (no database, no
auth, no resume), and nchan, an nginx module built for pub/sub fan-out (one nginx worker; the
publisher POSTs the same envelope bytes to its publisher location; its memory is the summed
RSS of the nginx processes). The ratios to each are printed. Clients run in separate processes
(raw asyncio sockets, a few thousand each) so they do not starve the server. Every process
lifts its open-file limit as far as the hard limit allows; a warning says when that is too
low for the streams asked for. Prints, never asserts.

    .venv/bin/python bench/sse_fanout.py                       # 10,000 streams, 10 events/s
    .venv/bin/python bench/sse_fanout.py --streams 1000 --runs 5
    .venv/bin/python bench/sse_fanout.py --streams 20000 --runs 1 --no-baseline
    .venv/bin/python bench/sse_fanout.py --no-nchan             # without nchan

nchan is on by default when its module is installed (Debian: `apt-get install
libnginx-mod-nchan`); the bench starts its own nginx on a free loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "sdk/python/src"))
sys.path.insert(0, str(ROOT / "src"))

from bench.common import machine  # noqa: E402
from causeflow_sdk.models import sample_data  # noqa: E402
from tests.support.keys import pg_key_env, pg_key_settings  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import service_env  # noqa: E402

STREAM_PATH = "/v1/notifications/stream"
EVENT_TYPE = "incident.created"
PER_CLIENT_PROCESS = 2500
# Every server sends the envelope as the data line, and the envelope's first key is its id
# (nchan puts its own message id on the `id:` line, so the data line is what all three share).
DATA_ID = re.compile(rb'\ndata: \{"id":"(evt_[0-9A-Z]{26})"')
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
NGINX = "/usr/sbin/nginx"
# Publisher connections open at once (the open loop queues behind them).
PUBLISH_CONNECTIONS = 32
# Descriptors a server keeps besides its streams (listener, database, publisher connections).
FD_MARGIN = 200
# What each server sends once a stream is open (before it, a client is not counted as open).
OPEN_MARKER = {"causeflow": b"retry: ", "baseline": b"retry: ", "nchan": b": hi\n"}


def nofile_room(wanted: int) -> int:
    """How many open files this process may have, lifting the soft limit toward `wanted`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and wanted > hard:
        return hard
    return wanted


def raise_nofile(wanted: int) -> Callable[[], None]:
    """A preexec_fn (or a first call) lifting this process's open-file limit to `wanted`."""

    def apply() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))

    return apply


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


# --- clients (separate processes) ------------------------------------------------------------


class ClientStats:
    def __init__(self) -> None:
        self.opened = 0
        self.refused = 0
        self.closed_early = 0
        self.arrivals: dict[str, list[float]] = defaultdict(list)


class StreamClient(asyncio.Protocol):
    """One stream over a raw socket: waits for the preamble, then notes each `id:` it reads."""

    def __init__(
        self, stats: ClientStats, request: bytes, marker: bytes, ready: asyncio.Future[bool]
    ) -> None:
        self.stats = stats
        self.request = request
        self.marker = marker
        self.ready = ready
        self.tail = b""
        self.open = False
        self.finished = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] (uvloop's is not a subclass)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.tail + data
        if not self.open:
            if not buffer.startswith(b"HTTP/1.1 200"):
                if len(buffer) >= 12 and not self.ready.done():
                    self.ready.set_result(False)
                return
            if self.marker not in buffer:
                self.tail = buffer
                return
            self.open = True
            if not self.ready.done():
                self.ready.set_result(True)
        end = 0
        arrivals = self.stats.arrivals
        for match in DATA_ID.finditer(buffer):
            arrivals[match.group(1).decode()].append(now)
            end = match.end()
        self.tail = buffer[max(end, len(buffer) - 64) :]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished:
            self.stats.closed_early += 1
        if not self.ready.done():
            self.ready.set_result(False)


async def _client(pipe: Connection, port: int, request: bytes, marker: bytes, count: int) -> None:
    loop = asyncio.get_running_loop()
    stats = ClientStats()
    clients: list[StreamClient] = []
    gate = asyncio.Semaphore(64)  # handshakes in flight, so the accept queue never overflows

    async def one() -> None:
        async with gate:
            ready: asyncio.Future[bool] = loop.create_future()
            client = StreamClient(stats, request, marker, ready)
            try:
                await loop.create_connection(lambda: client, "127.0.0.1", port)
                ok = await asyncio.wait_for(ready, 30)
            except (OSError, TimeoutError):
                ok = False
            if ok:
                stats.opened += 1
                clients.append(client)
            else:
                stats.refused += 1

    await asyncio.gather(*(one() for _ in range(count)))
    pipe.send(("connected", stats.opened, stats.refused))
    await loop.run_in_executor(None, pipe.recv)  # "finish"
    for client in clients:
        client.finished = True
        if client.transport is not None:
            client.transport.close()
    pipe.send(
        (
            "results",
            {
                "opened": stats.opened,
                "closed_early": stats.closed_early,
                "arrivals": dict(stats.arrivals),
            },
        )
    )


def client_process(pipe: Connection, port: int, request: bytes, marker: bytes, count: int) -> None:
    raise_nofile(count + 1024)()
    import uvloop

    uvloop.run(_client(pipe, port, request, marker, count))


# --- the baseline server (a separate process) ------------------------------------------------


def baseline_server(port: int) -> None:
    """A minimal aiohttp SSE fan-out: streams in a set, each publish written to every one."""
    import uvloop
    from aiohttp import web

    from causeflow.clock import ms_to_rfc3339
    from causeflow.ids import new_id

    streams: set[web.StreamResponse] = set()

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        await response.write(b"retry: 3000\n: stream open\n\n")
        streams.add(response)
        try:
            await asyncio.Future()  # until the client leaves (the handler is cancelled)
        finally:
            streams.discard(response)
        return response

    async def publish(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        now = int(time.time() * 1000)
        event_id = new_id("evt", now)
        envelope = orjson.dumps(
            {
                "id": event_id,
                "event": body["event"],
                "timestamp": ms_to_rfc3339(now),
                "tenantId": "ten_baseline",
                "data": body["data"],
            }
        )
        frame = b"id: %s\nevent: %s\ndata: %s\n\n" % (
            event_id.encode(),
            body["event"].encode(),
            envelope,
        )
        for response in list(streams):
            await response.write(frame)
        return web.Response(body=envelope, status=201, content_type="application/json")

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get(STREAM_PATH, stream)
    app.router.add_post("/v1/events", publish)
    app.router.add_get("/healthz", healthz)
    uvloop.install()
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        backlog=4096,
        handler_cancellation=True,
    )


# --- nchan (its own nginx, one worker) -------------------------------------------------------

NCHAN_CONF = """\
load_module {module};
worker_processes 1;
worker_rlimit_nofile {nofile};
error_log stderr warn;
pid nginx.pid;
events {{ worker_connections {connections}; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path tmp;
  proxy_temp_path tmp;
  fastcgi_temp_path tmp;
  uwsgi_temp_path tmp;
  scgi_temp_path tmp;
  nchan_shared_memory_size 128m;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /healthz {{ return 200 "ok"; }}
    location = /pub {{
      nchan_publisher;
      nchan_channel_id bench;
      nchan_message_buffer_length 16;
      nchan_message_timeout 60s;
    }}
    location = {stream} {{
      nchan_subscriber eventsource;
      nchan_channel_id bench;
      nchan_subscriber_first_message newest;
    }}
  }}
}}
"""


def nchan_available() -> bool:
    return NCHAN_MODULE.exists() and Path(NGINX).exists()


def nchan_command(tmp: Path, port: int, streams: int) -> list[str]:
    """Write nginx's config for nchan into `tmp`; the command that runs it in the foreground."""
    (tmp / "tmp").mkdir()
    nofile = nofile_room(streams + 2048)
    (tmp / "nginx.conf").write_text(
        NCHAN_CONF.format(
            module=NCHAN_MODULE,
            nofile=nofile,
            connections=max(1024, nofile - 64),
            port=port,
            stream=STREAM_PATH,
        )
    )
    return [NGINX, "-p", str(tmp), "-c", "nginx.conf", "-g", "daemon off;"]


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (nginx's master and its worker)."""
    found = [pid]
    for each in found:
        for task in Path(f"/proc/{each}/task").iterdir():
            children = (task / "children").read_text().split()
            found.extend(int(c) for c in children)
    return found


def tree_rss_kib(pid: int) -> int:
    return sum(rss_kib(p) for p in process_tree(pid))


def tree_cpu_seconds(pid: int) -> tuple[float, float]:
    user = system = 0.0
    for each in process_tree(pid):
        u, s = cpu_seconds(each)
        user, system = user + u, system + s
    return user, system


def envelope_bytes() -> tuple[str, bytes]:
    """An envelope as the service stores it, for a server that does not make its own."""
    from causeflow.clock import ms_to_rfc3339
    from causeflow.ids import new_id

    now = int(time.time() * 1000)
    event_id = new_id("evt", now)
    envelope = {
        "id": event_id,
        "event": EVENT_TYPE,
        "timestamp": ms_to_rfc3339(now),
        "tenantId": "ten_baseline",
        "data": sample_data(EVENT_TYPE),
    }
    return event_id, orjson.dumps(envelope)


# --- servers under test ----------------------------------------------------------------------


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).read()  # noqa: S310 (loopback)
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.05)


async def _provision(data_dir: Path, database_url: str) -> dict[str, str]:
    from causeflow.app import build_context
    from causeflow.db.migrate import migrate
    from causeflow.settings import Settings
    from causeflow.tenant.service import provision

    settings = Settings(
        data_dir=data_dir, database_url=database_url, **pg_key_settings(database_url)
    )
    await migrate(settings)
    ctx = await build_context(settings)
    try:
        return (await provision(ctx, name="bench")).as_json()
    finally:
        await ctx.db.dispose()


@contextmanager
def server(kind: str, streams: int, database_url: str) -> Iterator[tuple[int, str, dict[str, str]]]:
    """Start the server under test; yields (pid, base url, request headers)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="cf-sse-bench-") as tmp:
        log = Path(tmp) / "server.log"
        if kind == "causeflow":
            data_dir = Path(tmp) / "data"
            creds = asyncio.run(_provision(data_dir, database_url))
            headers = {"X-API-Key": creds["apiKey"]}
            env = service_env(
                {
                    "CAUSEFLOW_DATA_DIR": str(data_dir),
                    "CAUSEFLOW_DATABASE_URL": database_url,
                    **pg_key_env(database_url),
                    "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
                    "CAUSEFLOW_SSE_MAX_STREAMS_PER_TENANT": str(streams + 1000),
                    "CAUSEFLOW_LOG_LEVEL": "warning",
                }
            )
            cmd = [sys.executable, "-m", "causeflow", "serve", "--port", str(port)]
        elif kind == "nchan":
            headers = {}
            env = service_env()
            cmd = nchan_command(Path(tmp), port, streams)
        else:
            headers = {}
            env = service_env()
            cmd = [sys.executable, __file__, "--baseline-server", str(port)]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=raise_nofile(streams + 2048),
                start_new_session=True,
            )
        try:
            _wait_healthy(base, proc, log)
            yield proc.pid, base, headers
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# --- one run ---------------------------------------------------------------------------------


async def _post_event(
    session: aiohttp.ClientSession, kind: str, base: str, headers: dict[str, str]
) -> tuple[str, float]:
    """Publish one event; (its id, the time just before the POST).

    The service and the aiohttp baseline take `{event, data}` and answer with the envelope;
    nchan is handed the envelope bytes themselves (the publisher names the event's id).
    """
    if kind == "nchan":
        event_id, envelope = envelope_bytes()
        before = time.time()
        async with session.post(
            base + "/pub", data=envelope, headers={"X-EventSource-Event": EVENT_TYPE}
        ) as r:
            if r.status not in (201, 202):
                raise RuntimeError(f"publish answered {r.status}: {await r.text()}")
            await r.read()
        return event_id, before
    body = {"event": EVENT_TYPE, "data": sample_data(EVENT_TYPE)}
    before = time.time()
    async with session.post(base + "/v1/events", json=body, headers=headers) as r:
        if r.status != 201:
            raise RuntimeError(f"publish answered {r.status}: {await r.text()}")
        return orjson.loads(await r.read())["id"], before


async def _warm_up(kind: str, base: str, headers: dict[str, str]) -> None:
    """Exercise every path once so the idle RSS already holds the code's own allocations."""
    stream_headers = {**headers, "Accept": "text/event-stream"}
    async with aiohttp.ClientSession() as session:
        responses = [
            await session.get(
                base + STREAM_PATH, headers=stream_headers, timeout=aiohttp.ClientTimeout()
            )
            for _ in range(20)
        ]
        for _ in range(5):
            await _post_event(session, kind, base, headers)
        await asyncio.sleep(0.5)
        for response in responses:
            response.close()
    await asyncio.sleep(1.0)


async def _publish(
    kind: str, base: str, headers: dict[str, str], rate: float, seconds: float
) -> tuple[dict[str, float], int]:
    """POST events on a fixed schedule (open loop: a slow answer does not delay the next one,
    up to PUBLISH_CONNECTIONS at once); returns (event id -> time just before its POST, how
    many POSTs failed). A failed event is not counted as expected, nor as lost."""
    sent: dict[str, float] = {}
    failed = 0
    count = int(rate * seconds)

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal failed
        try:
            event_id, before = await _post_event(session, kind, base, headers)
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            failed += 1
            print(f"    publish failed: {exc!r}"[:200], flush=True)
            return
        sent[event_id] = before

    connector = aiohttp.TCPConnector(limit=PUBLISH_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        posts = []
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(one(session)))
        await asyncio.gather(*posts)
    return sent, failed


def run_once(kind: str, args: argparse.Namespace) -> dict[str, float]:
    with server(kind, args.streams, args.database_url) as (pid, base, headers):
        asyncio.run(_warm_up(kind, base, headers))
        rss_idle = tree_rss_kib(pid)
        port = int(base.rsplit(":", 1)[1])
        request = (
            f"GET {STREAM_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: text/event-stream\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode()
        ctx = multiprocessing.get_context("spawn")
        per_process = math.ceil(args.streams / max(1, math.ceil(args.streams / args.per_client)))
        workers = []
        remaining = args.streams
        while remaining > 0:
            count = min(per_process, remaining)
            remaining -= count
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                daemon=True,  # a run that fails does not leave its clients behind
                target=client_process,
                args=(child, port, request, OPEN_MARKER[kind], count),
            )
            proc.start()
            workers.append((proc, parent))
        started = time.monotonic()
        opened = refused = 0
        for _, pipe in workers:
            _, ok, bad = pipe.recv()
            opened += ok
            refused += bad
        connect_seconds = time.monotonic() - started
        time.sleep(2.0)
        rss_loaded = tree_rss_kib(pid)
        cpu_before = tree_cpu_seconds(pid)
        sent, failed = asyncio.run(_publish(kind, base, headers, args.rate, args.seconds))
        cpu_after = tree_cpu_seconds(pid)
        time.sleep(args.drain)
        latencies: list[float] = []
        received = 0
        closed_early = 0
        # per event: its first and last arrival anywhere (the fan-out's start and spread)
        first: dict[str, float] = {}
        last: dict[str, float] = {}
        for proc, pipe in workers:
            pipe.send("finish")
            _, result = pipe.recv()
            closed_early += result["closed_early"]
            for event_id, times in result["arrivals"].items():
                published = sent.get(event_id)
                if published is None:
                    continue
                received += len(times)
                latencies.extend(t - published for t in times)
                first[event_id] = min(first.get(event_id, math.inf), min(times))
                last[event_id] = max(last.get(event_id, 0.0), max(times))
            proc.join(30)
    latencies.sort()
    to_first = [first[e] - sent[e] for e in first]
    spread = [last[e] - first[e] for e in first]
    expected = opened * len(sent)
    return {
        "connected": opened,
        "refused": refused,
        "connect_s": connect_seconds,
        "events": len(sent),
        "pub_failed": failed,
        "lost": expected - received,
        "closed_early": closed_early,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "first_ms": statistics.median(to_first) * 1000 if to_first else float("nan"),
        "spread_ms": statistics.median(spread) * 1000 if spread else float("nan"),
        "rss_idle_mib": rss_idle / 1024,
        "rss_loaded_mib": rss_loaded / 1024,
        "kib_per_stream": (rss_loaded - rss_idle) / max(1, opened),
        "server_user_pct": 100 * (cpu_after[0] - cpu_before[0]) / args.seconds,
        "server_sys_pct": 100 * (cpu_after[1] - cpu_before[1]) / args.seconds,
    }


COLUMNS = [
    ("connected", "{:.0f}"),
    ("refused", "{:.0f}"),
    ("connect_s", "{:.1f}"),
    ("events", "{:.0f}"),
    ("pub_failed", "{:.0f}"),
    ("lost", "{:.0f}"),
    ("closed_early", "{:.0f}"),
    ("p50_ms", "{:.1f}"),
    ("p99_ms", "{:.1f}"),
    ("max_ms", "{:.1f}"),
    ("first_ms", "{:.1f}"),
    ("spread_ms", "{:.1f}"),
    ("rss_idle_mib", "{:.1f}"),
    ("rss_loaded_mib", "{:.1f}"),
    ("kib_per_stream", "{:.1f}"),
    ("server_user_pct", "{:.0f}"),
    ("server_sys_pct", "{:.0f}"),
]


def show(label: str, row: dict[str, float]) -> None:
    cells = "  ".join(f"{name}={fmt.format(row[name])}" for name, fmt in COLUMNS)
    print(f"  {label:<22} {cells}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=10.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to publish")
    parser.add_argument("--drain", type=float, default=3.0, help="wait after the last event")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--per-client", type=int, default=PER_CLIENT_PROCESS)
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default SQLite)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the aiohttp baseline")
    parser.add_argument(
        "--nchan",
        action=argparse.BooleanOptionalAction,
        default=nchan_available(),
        help="compare with nchan (default: on when its nginx module is installed)",
    )
    parser.add_argument("--baseline-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        baseline_server(args.baseline_server)
        return
    raise_nofile(args.streams + 2048)()
    if args.nchan and not nchan_available():
        parser.error(f"--nchan needs nginx and {NCHAN_MODULE} (apt-get install libnginx-mod-nchan)")
    print(f"machine: {machine()}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    room = nofile_room(args.streams + 2048)
    if room < args.streams + FD_MARGIN:
        # A server needs a descriptor per stream plus its own (listener, database, publisher).
        print(
            f"note: the open-file hard limit is {room} and cannot be raised from here: "
            f"streams capped at {room - FD_MARGIN} (asked {args.streams})",
            flush=True,
        )
        args.streams = room - FD_MARGIN
    print(
        f"workload: {args.streams} streams on one process, {args.rate:g} events/s for "
        f"{args.seconds:g} s, clients in {math.ceil(args.streams / args.per_client)} processes, "
        f"{args.runs} runs, storage {'PostgreSQL' if args.database_url else 'SQLite'}",
        flush=True,
    )
    kinds = ["causeflow"] + ([] if args.no_baseline else ["baseline"])
    kinds += ["nchan"] if args.nchan else []
    results: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    for run in range(1, args.runs + 1):
        for kind in kinds:
            row = run_once(kind, args)
            results[kind].append(row)
            show(f"run {run} {kind}", row)
    print("medians:")
    medians = {
        kind: {name: statistics.median(r[name] for r in rows) for name, _ in COLUMNS}
        for kind, rows in results.items()
    }
    for kind, row in medians.items():
        show(kind, row)
    ours = medians["causeflow"]
    for other in ("baseline", "nchan"):
        if other in medians:
            base = medians[other]
            ratios = ", ".join(
                f"{name} x{ours[name] / base[name]:.2f}"
                for name in ("p50_ms", "p99_ms", "kib_per_stream", "server_user_pct")
                if base[name]
            )
            print(f"causeflow / {other}: {ratios}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Delivery throughput and latency of a real `causeflow serve` (or API + workers on PostgreSQL).

Measures, over several runs (medians reported):
- deliveries/s with 10 and with 1 subscription per event, from "events accepted" to "every 2xx
  recorded" (the database says `succeeded`). Mode `bulk` commits the events in one transaction
  straight into the log (the delivery path alone); mode `api` publishes them with
  `POST /v1/events` (32 at a time) while deliveries run on the same CPU;
- p50/p99 publish-to-receipt latency at a steady 500 events/s through `POST /v1/events`;
- a baseline: a bare aiohttp loop that only signs and POSTs to the same receiver.
Beside each rate it prints the CPU the service processes spent per delivery (from /proc), which
stays meaningful on a shared machine where wall-clock rates do not. The receiver is a plain
aiohttp server in its own process; by default every subscription points at 127.0.0.1, one
host, so the per-host cap (16 attempts in flight) bounds the ten-subscription run; `--hosts 10`
spreads the ten over 127.0.0.1-10, as ten customers' endpoints would be. Prints, never asserts.

    .venv/bin/python bench/delivery.py                 # SQLite, one `causeflow serve`
    .venv/bin/python bench/delivery.py --backend pg    # one API process + two workers
    .venv/bin/python bench/delivery.py --backend pg --workers 4   # ... + four workers
    .venv/bin/python bench/delivery.py --modes bulk --hosts 10    # ten receiving hosts
    .venv/bin/python bench/delivery.py --modes bulk --drop-indexes later  # without later indexes
    .venv/bin/python bench/delivery.py --ordered       # ordered subscriptions instead
    .venv/bin/python bench/delivery.py --backend pg --api-processes 2   # two API processes
    .venv/bin/python bench/delivery.py --backend pg --scaling   # workers x API processes

`--ordered` measures ordered subscriptions: one ordered subscription and a receiver that takes
1 ms (deliveries/s), then 100 ordered against 100 unordered subscriptions, each on its own
loopback address with an in-flight cap of 1 per host (so 1 per subscription either way) and a
receiver that takes 5 ms, and prints the ratio.

`--scaling` (PostgreSQL) runs 1, 2 and 4 `causeflow worker` processes with 1 and 2 `causeflow
serve` processes (workers off), each pair on a fresh database, the pairs in turn in each round:
events published through `POST /v1/events` by 32 clients taking the API processes in turn,
ten subscriptions each. It prints one table of deliveries/s, the publish rate and the CPU
seconds per 1,000 deliveries of each process class (API, workers, PostgreSQL backends of the
run's database, the receiver, the bench client; from /proc), then each class's share of the
machine's cores and the share taken by other work, which shows what the runs were short of.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "sdk/python/src"))
sys.path.insert(0, str(ROOT / "src"))

from bench.common import machine, machine_cpu, processes  # noqa: E402
from causeflow_sdk.models import sample_data  # noqa: E402
from tests.support.keys import pg_key_settings  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import Deployment  # noqa: E402

ENV = {
    "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
    "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
    "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
    "CAUSEFLOW_LOG_LEVEL": "warning",
}
# The receiver listens on these loopback addresses; with --hosts N the ten subscriptions point
# at N of them, as ten customers' endpoints would be N hosts (the per-host in-flight cap of 16
# applies to each).
RECEIVER_HOSTS = [f"127.0.0.{i}" for i in range(1, 11)]
# --ordered gives each of its hundred subscriptions an address of its own
ORDERED_HOSTS = [f"127.0.0.{i}" for i in range(1, 101)]
TYPE_ORDERED = "remediation.proposed"  # the hundred ordered subscriptions want this type
TYPE_TEN = "incident.created"  # ten subscriptions want this type
TYPE_ONE = "investigation.progress"  # one subscription wants this one


# --- the receiver (a separate process) -----------------------------------------------------


def quiet_gc() -> None:
    """No automatic garbage collection in the load generator and the receiver.

    A full collection of either pauses it for 15-70 ms, which would be counted as the service's
    latency (a request sent late, an arrival stamped late). They collect between measurements
    instead (`gc.collect()` before each one), where a pause costs nothing.
    """
    gc.collect()
    gc.freeze()
    gc.disable()


def run_receiver(port: int) -> None:
    """Answer 204 at once; remember the first arrival of every (path, event id)."""
    import uvloop
    from aiohttp import web

    arrivals: dict[tuple[str, str], float] = {}
    counter = [0]

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        delay = request.query.get("delay_ms")
        if delay:  # a receiver that takes this long to answer
            await asyncio.sleep(float(delay) / 1000)
        now = time.time()
        counter[0] += 1
        # the envelope starts {"id":"evt_<26>" (30 characters of id)
        event_id = body[7:37].decode() if body.startswith(b'{"id":"') else ""
        arrivals.setdefault((request.path, event_id), now)
        return web.Response(status=204)

    async def stats(_request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps({"count": counter[0], "unique": len(arrivals), "pid": os.getpid()})
        )

    async def dump(_request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps([[p, e, t] for (p, e), t in arrivals.items()]))

    async def reset(_request: web.Request) -> web.Response:
        arrivals.clear()
        counter[0] = 0
        gc.collect()  # between measurements, never during one (see quiet_gc)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/_stats", stats)
    app.router.add_get("/_arrivals", dump)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/{tail:.*}", hook)
    uvloop.install()
    web.run_app(app, host=ORDERED_HOSTS, port=port, access_log=None, print=None, backlog=4096)


@contextmanager
def receiver_process() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--receiver", str(port)],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(base + "/_stats", timeout=1).read()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the receiver did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


# --- helpers ---------------------------------------------------------------------------------


def service_cpu(deployment: Deployment) -> float:
    """CPU seconds used so far by every service process (all threads), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in deployment.processes:
        if proc.pid is None:
            continue
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


class Counts:
    """Deliveries of this run recorded as succeeded, read straight from the database.

    A poll asks only how many deliveries are still pending (an index range over the few in
    flight); the run's succeeded rows are counted (by tenant and creation time) only once
    nothing is pending. Counting every succeeded row at each poll grew with the earlier runs'
    history and took CPU from the service being measured.
    """

    def __init__(self, deployment: Deployment, tenant_id: str) -> None:
        self.deployment = deployment
        self.tenant_id = tenant_id
        self.since_ms = 0
        self._pg: Any = None
        self._lite: Any = None
        self.queries = 0  # statements sent on PostgreSQL (each its own transaction)

    async def backend_pid(self) -> int:
        """The PostgreSQL backend serving these polls (0 on SQLite)."""
        if not self.deployment.database_url:
            return 0
        return await self._one("SELECT pg_backend_pid()")

    async def transactions(self) -> int:
        """Transactions ended in this database so far, less the ones these counts sent.

        PostgreSQL publishes a backend's figures within a second or so of it going idle.
        """
        ended = await self._one(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
        return ended - self.queries

    def start(self) -> None:
        """Count from now on."""
        self.since_ms = int(time.time() * 1000) - 1

    async def _one(self, sql: str, *args: Any) -> int:
        if self.deployment.database_url:
            import asyncpg

            if self._pg is None:
                self._pg = await asyncpg.connect(self.deployment.database_url)
            pg_sql = sql
            for n in range(len(args)):
                pg_sql = pg_sql.replace("?", f"${n + 1}", 1)
            self.queries += 1
            return int(await self._pg.fetchval(pg_sql, *args))
        import sqlite3

        if self._lite is None:
            path = self.deployment.data_dir / "causeflow.db"
            self._lite = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        return int(self._lite.execute(sql, args).fetchone()[0])

    async def succeeded(self) -> int:
        return await self._one(
            "SELECT count(*) FROM deliveries WHERE tenant_id = ? AND created_at >= ?"
            " AND status = 'succeeded'",
            self.tenant_id,
            self.since_ms,
        )

    async def wait_for(self, target: int, timeout: float) -> float:
        """Poll until `target` deliveries of this run are recorded; returns the time.time()."""
        deadline = time.monotonic() + timeout
        while True:
            pending = await self._one("SELECT count(*) FROM deliveries WHERE status = 'pending'")
            if pending == 0 and await self.succeeded() >= target:
                return time.time()
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {await self.succeeded()} of {target} recorded")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._lite is not None:
            self._lite.close()


@dataclass
class Latency:
    achieved_rate: float  # events/s the API actually took
    publish: list[float] = field(default_factory=list)  # request sent -> receiver has it, ms
    accepted: list[float] = field(default_factory=list)  # 201 received -> receiver has it
    api: list[float] = field(default_factory=list)  # request sent -> 201 received


class Bench:
    def __init__(
        self,
        deployment: Deployment,
        api: str,
        creds: dict[str, str],
        receiver: str,
        hosts: int = 1,
        apis: list[str] | None = None,
    ) -> None:
        self.deployment = deployment
        self.api = api
        self.apis = apis or [api]  # publishers take these in turn, one per client
        self.creds = creds
        self.receiver = receiver
        self.hosts = hosts
        self.counts = Counts(deployment, creds["tenantId"])
        self.session: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self.session is not None
        return self.session

    async def __aenter__(self) -> Bench:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256),
            headers={"X-API-Key": self.creds["apiKey"]},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()
        await self.counts.close()

    async def subscribe(self, count: int, event_type: str) -> None:
        for i in range(count):
            base = self.receiver.replace("127.0.0.1", RECEIVER_HOSTS[i % self.hosts], 1)
            async with self.http.post(
                self.api + "/v1/webhook-subscriptions",
                json={"url": f"{base}/{event_type}/{i}", "events": [event_type]},
            ) as resp:
                assert resp.status == 201, await resp.text()

    async def subscribe_ordered(
        self, count: int, event_type: str, *, ordered: bool, delay_ms: int
    ) -> None:
        """`count` subscriptions to `event_type`, each on its own loopback address."""
        for i in range(count):
            base = self.receiver.replace("127.0.0.1", ORDERED_HOSTS[i], 1)
            body = {
                "url": f"{base}/{event_type}/{i}?delay_ms={delay_ms}",
                "events": [event_type],
                "ordering": "ordered" if ordered else "unordered",
            }
            async with self.http.post(self.api + "/v1/webhook-subscriptions", json=body) as resp:
                assert resp.status == 201, await resp.text()

    async def publish_one(self, event_type: str, api: str | None = None) -> tuple[float, str]:
        sent = time.time()
        async with self.http.post(
            (api or self.api) + "/v1/events",
            json={"event": event_type, "data": sample_data(event_type)},
        ) as resp:
            body = await resp.read()
            assert resp.status == 201, body
        return sent, orjson.loads(body)["id"]

    async def publish_many(self, event_type: str, count: int, concurrency: int = 32) -> None:
        left = [count]

        async def one_client(api: str) -> None:
            while left[0] > 0:
                left[0] -= 1
                try:
                    await self.publish_one(event_type, api)
                except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
                    # a kept-alive connection the server closed as it was reused: send again
                    # (at worst the event is stored twice; the counts wait for at least as
                    # many deliveries as asked)
                    await self.publish_one(event_type, api)

        apis = self.apis
        await asyncio.gather(*(one_client(apis[i % len(apis)]) for i in range(concurrency)))

    async def bulk_append(self, event_type: str, count: int) -> None:
        """Commit `count` events in one transaction, as a bulk import would."""
        from causeflow.app import build_context
        from causeflow.event.log import append_event
        from causeflow.settings import Settings

        settings = Settings(
            data_dir=self.deployment.data_dir,
            database_url=self.deployment.database_url or "",
            **pg_key_settings(self.deployment.database_url),
        )
        ctx = await build_context(settings)
        try:
            data = sample_data(event_type)
            async with ctx.db.transaction() as tx:
                for _ in range(count):
                    await append_event(
                        tx,
                        tenant_id=self.creds["tenantId"],
                        event_type=event_type,
                        data=data,
                        now_ms=ctx.clock.now_ms(),
                    )
        finally:
            await ctx.db.dispose()

    async def throughput(
        self, event_type: str, subs: int, events: int, mode: str
    ) -> tuple[float, float]:
        """(deliveries/s, service CPU microseconds per delivery)."""
        gc.collect()
        self.counts.start()
        target = events * subs
        if mode == "bulk":
            await self.bulk_append(event_type, events - 1)
            cpu = service_cpu(self.deployment)
            started = time.time()
            # one event through the API wakes the service's dispatcher (SQLite has no NOTIFY
            # between processes; on PostgreSQL the bulk commit already did)
            await self.publish_one(event_type)
        else:
            cpu = service_cpu(self.deployment)
            started = time.time()
            await self.publish_many(event_type, events)
        finished = await self.counts.wait_for(target, timeout=120)
        used = service_cpu(self.deployment) - cpu
        return events * subs / (finished - started), used / (events * subs) * 1e6

    async def latency(self, event_type: str, subs: int, rate: float, seconds: float) -> Latency:
        """Publish at a steady `rate` (open loop: on schedule, whatever the API's pace)."""
        async with self.http.post(self.receiver + "/_reset") as resp:
            await resp.read()
        gc.collect()
        self.counts.start()
        total = int(rate * seconds)
        sent: dict[str, tuple[float, float]] = {}  # event id -> (request sent, 201 received)
        start = time.monotonic() + 0.05

        async def at(when: float) -> None:
            await asyncio.sleep(max(0.0, when - time.monotonic()))
            t, event_id = await self.publish_one(event_type)
            sent[event_id] = (t, time.time())

        first = time.time()
        await asyncio.gather(*(at(start + i / rate) for i in range(total)))
        achieved = total / (max(a for _t, a in sent.values()) - first)
        await self.counts.wait_for(total * subs, timeout=120)
        async with self.http.get(self.receiver + "/_arrivals") as resp:
            arrivals = orjson.loads(await resp.read())
        result = Latency(achieved)
        for _path, event_id, received in arrivals:
            if event_id in sent:
                t_sent, t_accepted = sent[event_id]
                result.publish.append((received - t_sent) * 1000)
                result.accepted.append((received - t_accepted) * 1000)
        for t_sent, t_accepted in sent.values():
            result.api.append((t_accepted - t_sent) * 1000)
        return result


async def baseline(receiver: str, count: int, concurrency: int = 64) -> float:
    """The ceiling: sign each body (both schemes, one secret) and POST it, nothing else."""
    gc.collect()
    from causeflow.webhook.signing import delivery_headers, generate_secret

    secret = generate_secret()
    body = orjson.dumps(
        {"id": "evt_01JD0000000000000000000000", "event": TYPE_TEN, "data": sample_data(TYPE_TEN)}
    )
    left = [count]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def one_client() -> None:
            while left[0] > 0:
                left[0] -= 1
                headers = delivery_headers(
                    event_type=TYPE_TEN,
                    msg_id="msg_01JD0000000000000000000000",
                    timestamp=int(time.time()),
                    body=body,
                    secrets=[secret],
                    version="bench",
                )
                async with http.post(receiver + "/baseline", data=body, headers=headers) as r:
                    await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


# --- the run ---------------------------------------------------------------------------------


def start_deployment(
    tmp: Path, backend: str, pg_url: str | None, workers: int = 2, api_processes: int = 1
) -> tuple[Deployment, list[str]]:
    """The service processes; returns them and the base URL of each API process.

    On PostgreSQL the API processes (`causeflow serve`) run no workers: deliveries are the
    `causeflow worker` processes' alone. SQLite is one `serve` doing both.
    """
    deployment = Deployment(tmp, pg_url if backend == "pg" else None, env=ENV)
    if backend == "pg":
        servers = [
            deployment.add_server(CAUSEFLOW_RUN_WORKERS="false") for _ in range(api_processes)
        ]
        for _ in range(workers):
            deployment.add_worker()
    else:
        servers = [deployment.add_server()]
    return deployment, [server.base_url for server in servers]


async def measure(
    args: argparse.Namespace, deployment: Deployment, apis: list[str], receiver: str
) -> None:
    creds = deployment.create_tenant("bench")
    async with Bench(deployment, apis[0], creds, receiver, args.hosts, apis) as bench:
        await bench.subscribe(10, TYPE_TEN)
        await bench.subscribe(1, TYPE_ONE)
        await bench.throughput(TYPE_TEN, 10, 200, "bulk")  # warm-up: imports, caches, pools
        results: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for mode in args.modes:
                for subs, event_type, events in (
                    (10, TYPE_TEN, args.events_ten),
                    (1, TYPE_ONE, args.events_one),
                ):
                    key = f"deliveries/s, {subs:>2} subscription(s) per event, {mode}"
                    value, per = await bench.throughput(event_type, subs, events, mode)
                    results.setdefault(key, []).append(value)
                    cpu.setdefault(key, []).append(per)
                    print(f"  run: {key}: {value:,.0f} ({per:.0f} us CPU each)", flush=True)
            base = await baseline(receiver, args.baseline_requests)
            results.setdefault("baseline: bare aiohttp sign+POST req/s", []).append(base)
            print(f"  run: baseline {base:,.0f} req/s", flush=True)
        lat: dict[int, list[Latency]] = {}
        for _ in range(args.runs):
            for subs, event_type in ((1, TYPE_ONE), (10, TYPE_TEN))[: args.latency_configs]:
                got = await bench.latency(event_type, subs, args.rate, args.latency_seconds)
                lat.setdefault(subs, []).append(got)
                print(
                    f"  run: latency {subs} sub(s) at {got.achieved_rate:.0f} events/s:"
                    f" p50 {percentile(got.publish, 50):.1f} ms"
                    f" p99 {percentile(got.publish, 99):.1f} ms",
                    flush=True,
                )

    print()
    print(f"machine: {machine()}; load average now {os.getloadavg()[0]:.1f}")
    api_count = "API" if args.api_processes == 1 else f"{args.api_processes} API processes"
    workers = (
        "one `causeflow serve`"
        if args.backend == "sqlite"
        else f"{api_count} + {args.workers} `causeflow worker`"
    )
    print(f"receiver: {args.hosts} loopback address(es) for the ten subscriptions")
    print(f"backend: {args.backend} ({workers}); runs: {args.runs}; medians:")
    base = statistics.median(results.pop("baseline: bare aiohttp sign+POST req/s"))
    for key, values in results.items():
        med = statistics.median(values)
        per = statistics.median(cpu[key])
        print(
            f"  {key:<52} {med:>9,.0f}   ({med / base:.0%} of baseline;"
            f" service CPU {per:.0f} us per delivery)"
        )
    print(f"  {'baseline: bare aiohttp sign+POST, 64 in flight':<52} {base:>9,.0f} req/s")
    for subs, runs in lat.items():

        def at(pick: str, pct: float, runs: list[Latency] = runs) -> float:
            return statistics.median(percentile(getattr(r, pick), pct) for r in runs)

        rate = statistics.median(r.achieved_rate for r in runs)
        print(
            f"  publish-to-receipt, {args.rate:.0f} events/s asked ({rate:.0f}/s taken by the"
            f" API) x {subs} sub(s): p50 {at('publish', 50):.1f} ms,"
            f" p99 {at('publish', 99):.1f} ms"
        )
        print(
            f"    of which the API call (sent -> 201): p50 {at('api', 50):.1f} ms,"
            f" p99 {at('api', 99):.1f} ms; accepted (201) -> receipt:"
            f" p50 {at('accepted', 50):.1f} ms, p99 {at('accepted', 99):.1f} ms"
        )


async def sequential_baseline(receiver: str, count: int, delay_ms: int) -> float:
    """A bare aiohttp loop POSTing one request after another: the ceiling of any one ordered
    lane against a receiver that takes `delay_ms`."""
    url = f"{receiver}/baseline/0?delay_ms={delay_ms}"
    body = orjson.dumps({"id": "evt_baseline"})
    async with aiohttp.ClientSession() as http:
        started = time.perf_counter()
        for _ in range(count):
            async with http.post(url, data=body) as resp:
                await resp.read()
        return count / (time.perf_counter() - started)


async def measure_ordered(
    args: argparse.Namespace, deployment: Deployment, apis: list[str], receiver: str
) -> None:
    """One ordered subscription (1 ms receiver); 100 ordered vs 100 unordered (5 ms, cap 1)."""
    creds = deployment.create_tenant("bench")
    async with Bench(deployment, apis[0], creds, receiver) as bench:
        await bench.subscribe_ordered(1, TYPE_ONE, ordered=True, delay_ms=1)
        await bench.subscribe_ordered(100, TYPE_ORDERED, ordered=True, delay_ms=5)
        await bench.subscribe_ordered(100, TYPE_TEN, ordered=False, delay_ms=5)
        await bench.throughput(TYPE_ONE, 1, 200, "bulk")  # warm-up
        results: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}  # service CPU microseconds per delivery
        for _ in range(args.runs):
            for key, event_type, subs, events in (
                ("1 ordered subscription, 1 ms receiver", TYPE_ONE, 1, args.events_one),
                (
                    "100 ordered subscriptions, 5 ms, cap 1",
                    TYPE_ORDERED,
                    100,
                    args.events_ten // 10,
                ),
                ("100 unordered subscriptions, 5 ms, cap 1", TYPE_TEN, 100, args.events_ten // 10),
            ):
                value, per = await bench.throughput(event_type, subs, events, "bulk")
                results.setdefault(key, []).append(value)
                cpu.setdefault(key, []).append(per)
                line = f"{key}: {value:,.0f} deliveries/s ({per:,.0f} us CPU each)"
                print(f"  run: {line}", flush=True)
            base = await sequential_baseline(receiver, 1000, 1)
            results.setdefault("baseline: bare sequential POSTs, 1 ms", []).append(base)
            one = results["1 ordered subscription, 1 ms receiver"][-1]
            line = f"baseline {base:,.0f} sequential req/s; 1 ordered / baseline {one / base:.0%}"
            print(f"  run: {line}", flush=True)
    print()
    print(f"machine: {machine()}; load average now {os.getloadavg()[0]:.1f}")
    print(f"backend: {args.backend}; runs: {args.runs}; medians (deliveries/s):")
    medians = {key: statistics.median(values) for key, values in results.items()}
    for key, med in medians.items():
        per = f"  ({statistics.median(cpu[key]):,.0f} us CPU each)" if key in cpu else ""
        print(f"  {key:<44} {med:>9,.0f}{per}")
    one, ordered, unordered, base = medians.values()
    print(f"  1 ordered subscription / bare sequential baseline: {one / base:.0%}")
    print(f"  ratio 100 ordered / 100 unordered: {ordered / unordered:.2f}")


# --- --scaling: worker and API processes on PostgreSQL ---------------------------------------

SCALING_WORKERS = (1, 2, 4)
SCALING_APIS = (1, 2)
# the process classes whose CPU the scaling table shows, in its column order
CLASSES = ("api", "workers", "postgres", "receiver", "client")
PG_BACKGROUND = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "logical replication launcher",
)


@dataclass
class Classes:
    """Which process belongs to which class (API, workers, PostgreSQL, receiver, client)."""

    api_groups: set[int]
    worker_groups: set[int]
    receiver_group: int
    database: str  # a backend's title names its database: "postgres: 15/main: user db ..."
    skip: set[int] = field(default_factory=set)  # the bench's own polling connection

    def of(self, pid: int, group: int, cmdline: str) -> str | None:
        if group in self.api_groups:
            return "api"
        if group in self.worker_groups:
            return "workers"
        if group == self.receiver_group:
            return "receiver"
        if pid == os.getpid():
            return "client"
        if cmdline.startswith("/") and cmdline.split(" ", 1)[0].endswith("/postgres"):
            return "pg shared"  # the postmaster
        if not cmdline.startswith("postgres:") or pid in self.skip:
            return None
        if f" {self.database} " in cmdline + " ":
            return "postgres"
        if any(name in cmdline for name in PG_BACKGROUND):
            return "pg shared"  # the server's own processes: every database's work
        return None

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each class (processes that exit in between are lost)."""
        totals: dict[str, float] = {}
        for pid, cpu, group, cmdline in processes():
            name = self.of(pid, group, cmdline)
            if name is not None:
                totals[name] = totals.get(name, 0.0) + cpu
        return totals


@dataclass
class ScaleRun:
    deliveries: float  # deliveries/s, first publish to the last delivery recorded
    published: float  # events/s the API processes took
    cpu: dict[str, float]  # CPU seconds per 1,000 deliveries, by class
    share: dict[str, float]  # share of all the machine's cores over the run, by class
    load: float  # 1-minute load average at the end
    transactions: float  # PostgreSQL transactions per delivery (publishing and delivering)


async def scaled_run(bench: Bench, classes: Classes, events: int, subs: int) -> ScaleRun:
    """Publish `events` through the API processes and time their `subs` deliveries each."""
    gc.collect()
    bench.counts.start()
    target = events * subs
    before, machine_before = classes.cpu(), machine_cpu()
    transactions = await bench.counts.transactions()
    started = time.time()
    await bench.publish_many(TYPE_TEN, events)
    published = time.time()
    finished = await bench.counts.wait_for(target, timeout=180)
    after, machine_after = classes.cpu(), machine_cpu()
    await asyncio.sleep(2)  # until every backend has published its transaction counts
    transactions = await bench.counts.transactions() - transactions
    cores = (machine_after[1] - machine_before[1]) or 1.0  # core-seconds that went by
    used = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    used["machine"] = machine_after[0] - machine_before[0]
    used["ours"] = sum(used.get(name, 0.0) for name in CLASSES)
    return ScaleRun(
        deliveries=target / (finished - started),
        published=events / (published - started),
        cpu={name: seconds / target * 1000 for name, seconds in used.items()},
        share={name: seconds / cores for name, seconds in used.items()},
        load=os.getloadavg()[0],
        transactions=transactions / target,
    )


async def measure_scaled(
    args: argparse.Namespace, deployment: Deployment, apis: list[str], receiver: str
) -> ScaleRun:
    creds = deployment.create_tenant("bench")
    async with Bench(deployment, apis[0], creds, receiver, args.hosts, apis) as bench:
        await bench.subscribe(10, TYPE_TEN)
        await bench.throughput(TYPE_TEN, 10, 200, "api")  # warm-up: every API process, pools
        async with bench.http.get(receiver + "/_stats") as resp:
            receiver_pid = orjson.loads(await resp.read())["pid"]
        classes = Classes(
            api_groups={p.pid for p in deployment.servers if p.pid},
            worker_groups={p.pid for p in deployment.workers if p.pid},
            receiver_group=receiver_pid,  # the leader of its own session
            database=urllib.parse.urlsplit(deployment.database_url or "").path.lstrip("/"),
            skip={await bench.counts.backend_pid()},
        )
        return await scaled_run(bench, classes, args.events_ten, 10)


def run_scaling(args: argparse.Namespace, tmp: Path, receiver: str) -> None:
    """Every (workers, API processes) pair, each round in turn, each run on a fresh database."""
    from tests.support.pg import fresh_database

    runs: dict[tuple[int, int], list[ScaleRun]] = {}
    matrix = [(w, a) for w in SCALING_WORKERS for a in SCALING_APIS]
    for round_ in range(args.runs):
        for workers, api_processes in matrix:
            with fresh_database("cf_bench_scale") as url:
                where = tmp / f"{round_}-{workers}-{api_processes}"
                deployment, apis = start_deployment(where, "pg", url, workers, api_processes)
                with deployment:
                    got = asyncio.run(measure_scaled(args, deployment, apis, receiver))
            runs.setdefault((workers, api_processes), []).append(got)
            cpu = ", ".join(f"{c} {got.cpu.get(c, 0.0):.2f}" for c in (*CLASSES, "ours"))
            print(
                f"  run: {workers} worker(s), {api_processes} API: {got.deliveries:,.0f}"
                f" deliveries/s, {got.published:,.0f} events/s published;"
                f" machine busy {got.share['machine']:.0%}, ours {got.share['ours']:.0%};"
                f" load {got.load:.1f}; {got.transactions:.2f} PostgreSQL transactions per"
                f" delivery; CPU s per 1,000 deliveries: {cpu}",
                flush=True,
            )
    print_scaling(args, runs)


def print_scaling(args: argparse.Namespace, runs: dict[tuple[int, int], list[ScaleRun]]) -> None:
    def med(values: list[ScaleRun], pick: Any) -> float:
        return statistics.median(pick(r) for r in values)

    cores = os.cpu_count() or 1
    print()
    print(f"machine: {machine()}; load average now {' '.join(map(str, os.getloadavg()))}")
    print(
        f"PostgreSQL, N `causeflow serve` (workers off) + M `causeflow worker`; {args.events_ten}"
        f" events per run through POST /v1/events (32 clients, round-robin over the API"
        f" processes), 10 subscriptions each on {args.hosts} receiving host(s);"
        f" runs: {args.runs}; medians"
    )
    print()
    print(
        "| workers | API | deliveries/s | events/s published | CPU s per 1,000 deliveries:"
        " API | workers | PostgreSQL | receiver | bench client | all of these"
        " | load (1 min) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for (workers, api_processes), got in runs.items():
        cells = [f"{med(got, lambda r, c=c: r.cpu.get(c, 0.0)):.2f}" for c in (*CLASSES, "ours")]
        loads = sorted(r.load for r in got)
        print(
            f"| {workers} | {api_processes} | {med(got, lambda r: r.deliveries):,.0f}"
            f" | {med(got, lambda r: r.published):,.0f} | {' | '.join(cells)}"
            f" | {loads[0]:.1f}–{loads[-1]:.1f} |"
        )
    print()
    print(f"share of the machine's {cores} cores over the run (medians; 100% = all {cores} busy):")
    print()
    print(
        "| workers | API | API | workers | PostgreSQL | receiver | bench client"
        " | all of these | other work | idle | deliveries per CPU s of all of these |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (workers, api_processes), got in runs.items():
        shares = [med(got, lambda r, c=c: r.share.get(c, 0.0)) for c in (*CLASSES, "ours")]
        other = med(got, lambda r: r.share["machine"] - r.share["ours"])
        idle = med(got, lambda r: max(0.0, 1 - r.share["machine"]))
        row = " | ".join(f"{v:.0%}" for v in (*shares, other, idle))
        per_cpu = med(got, lambda r: 1000 / r.cpu["ours"])
        print(f"| {workers} | {api_processes} | {row} | {per_cpu:,.0f} |")
    print()
    print("PostgreSQL transactions per delivery (publishing and delivering; medians):")
    for (workers, api_processes), got in runs.items():
        print(
            f"  {workers} worker(s), {api_processes} API: {med(got, lambda r: r.transactions):.2f}"
        )
    pg_shared = statistics.median(r.cpu.get("pg shared", 0.0) for got in runs.values() for r in got)
    print()
    print(
        f"PostgreSQL's shared processes (WAL writer, checkpointer, ...: every database's work on"
        f" the server, not only ours): {pg_shared:.2f} CPU s per 1,000 deliveries, not counted"
        f" above"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--pg-url", help="an empty PostgreSQL database (default: a fresh one)")
    parser.add_argument(
        "--workers", type=int, default=2, help="`causeflow worker` processes (pg backend)"
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=1,
        help="`causeflow serve` processes, workers off (pg backend); publishers take them in turn",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="pg: deliveries/s of events published through the API with 1, 2, 4 workers x 1, 2"
        " API processes, and the CPU of each process class",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ordered", action="store_true", help="measure ordered subscriptions")
    parser.add_argument(
        "--events-ten", type=int, help="events, 10 subscriptions (2000; 1000 per --scaling run)"
    )
    parser.add_argument("--events-one", type=int, default=5000, help="events, 1 subscription")
    parser.add_argument("--modes", default="bulk,api", help="bulk and/or api")
    parser.add_argument("--rate", type=float, default=500.0, help="events/s for the latency")
    parser.add_argument("--latency-seconds", type=float, default=4.0)
    parser.add_argument("--latency-configs", type=int, default=1, help="1: 1 sub; 2: also 10")
    parser.add_argument("--baseline-requests", type=int, default=20000)
    parser.add_argument(
        "--drop-indexes",
        default="",
        help="SQLite: indexes (comma-separated, or 'later' for those added after the first"
        " release of the delivery engine) dropped before measuring, to show what they cost",
    )
    parser.add_argument(
        "--hosts",
        type=int,
        default=1,
        choices=range(1, len(RECEIVER_HOSTS) + 1),
        metavar="1-10",
        help="loopback addresses the ten subscriptions are spread over (default: all on one)",
    )
    args = parser.parse_args()
    quiet_gc()
    if args.receiver:
        run_receiver(args.receiver)
        return
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.events_ten is None:  # the scaling matrix is 18 runs: 1000 keeps it near 15 minutes
        args.events_ten = 1000 if args.scaling else 2000
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as tmp, receiver_process() as receiver:
        if args.scaling:
            if args.backend != "pg":
                raise SystemExit("--scaling measures PostgreSQL: add --backend pg")
            run_scaling(args, Path(tmp), receiver)
        elif args.backend == "pg" and not args.pg_url:
            from tests.support.pg import fresh_database

            with fresh_database("cf_bench") as url:
                run(args, Path(tmp), url, receiver)
        else:
            run(args, Path(tmp), args.pg_url, receiver)


# The per-delivery indexes later features added on top of the delivery engine's first schema
# (pending queue, per-subscription history): sequence numbers and the ordered claim, the
# delivery search, endpoint statistics. `--drop-indexes later` measures the engine without them.
LATER_INDEXES = (
    "ux_deliveries_subscription_sequence",
    "ix_deliveries_pending_subscription",
    "ix_deliveries_tenant_created",
    "ix_deliveries_tenant_event",
    "ix_deliveries_tenant_type_created",
    "ix_attempts_subscription_created",
)


def drop_indexes(deployment: Deployment, backend: str, names: str) -> None:
    """Drop indexes from the migrated SQLite store of the running service (it re-prepares its
    statements on the schema change). A measuring aid only: queries that need them (ordered
    claims, searches, statistics) may then scan."""
    if backend != "sqlite":
        raise SystemExit("--drop-indexes is for the SQLite backend")
    chosen = LATER_INDEXES if names == "later" else tuple(n.strip() for n in names.split(","))
    db = sqlite3.connect(deployment.data_dir / "causeflow.db", timeout=30)
    try:
        for name in chosen:
            if not name.isidentifier():
                raise SystemExit(f"not an index name: {name!r}")
            db.execute(f"DROP INDEX IF EXISTS {name}")
        db.commit()
    finally:
        db.close()
    print(f"dropped indexes: {', '.join(chosen)}")


def run(args: argparse.Namespace, tmp: Path, pg_url: str | None, receiver: str) -> None:
    if args.workers < 1 or args.api_processes < 1:
        raise SystemExit("--workers and --api-processes must be at least 1")
    if args.ordered:
        # one attempt in flight per host: per subscription, each being on its own address
        ENV["CAUSEFLOW_WEBHOOK_MAX_INFLIGHT_PER_HOST"] = "1"
        ENV["CAUSEFLOW_MAX_SUBSCRIPTIONS_PER_TENANT"] = "250"
    deployment, apis = start_deployment(tmp, args.backend, pg_url, args.workers, args.api_processes)
    with deployment:
        if args.drop_indexes:
            drop_indexes(deployment, args.backend, args.drop_indexes)
        how = measure_ordered if args.ordered else measure
        asyncio.run(how(args, deployment, apis, receiver))


if __name__ == "__main__":
    main()

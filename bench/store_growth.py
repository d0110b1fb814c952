"""How the cost of the hot paths grows with the store: an empty store against a big one.

Builds two stores on the same database engine (SQLite, or fresh PostgreSQL databases on
127.0.0.1:5432 that it creates and drops), each migrated with the real migrations:
- empty: three tenants and their subscriptions, nothing else;
- big: the same, then `--events` events (default 5,000,000) in the tenants' logs and
  `--deliveries` delivery records (default 10,000,000) of them, an attempt row for
  `--attempt-fraction` of those, written with bulk SQL (executemany in large batches on SQLite,
  COPY on PostgreSQL; the secondary indexes are dropped first and rebuilt from their own
  definitions after). The rows keep the store's invariants: gap-free log positions and event
  heads, dispatch cursors at the head (nothing left to dispatch), gap-free subscription
  sequences and `subscription_sequences` at their last, finished deliveries (succeeded, failed,
  cancelled), times spread over the last 60 days in log order.

Against a real `causeflow serve` (plus one `causeflow worker` on PostgreSQL) on each store it
measures publish rate (`POST /v1/events`), inbound alert rate (`POST /v1/webhooks/.../custom`),
delivery throughput to a loopback receiver, `GET /v1/events` page latency with a cursor near the
start, middle and end of the log, SSE resume latency (Last-Event-ID of an early event, and of one
inside the replay window: time to the first frame after the preamble), `GET /v1/deliveries`
search latency (by status, by event type, by time), and, on the big store, publish p99 while
the retention sweep deletes the oldest `--purge-fraction` of the history against publish p99
idle just before (one purge phase per `--purge-batch` item, each on its own slice: a batch size,
or `size:pause` with a `CAUSEFLOW_RETENTION_PAUSE_RATIO`, or `default` for the service's own
settings). Prints
each with its empty-store figure and the ratio, and the query plans (SQLite EXPLAIN QUERY
PLAN, PostgreSQL EXPLAIN) of the page, resume, search and purge statements, built by the real
functions.
Prints, never asserts.

    .venv/bin/python bench/store_growth.py                         # SQLite, 5M events
    .venv/bin/python bench/store_growth.py --backend pg
    .venv/bin/python bench/store_growth.py --events 1000000 --deliveries 2000000
    .venv/bin/python bench/store_growth.py --purge-fraction 0.4 --purge-batch 500,100
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "sdk/python/src"))
sys.path.insert(0, str(ROOT / "src"))

from bench.common import machine  # noqa: E402
from causeflow.api.pagination import encode_cursor  # noqa: E402
from causeflow.clock import ms_to_rfc3339  # noqa: E402
from causeflow.db.dialect import PostgresDialect, SqliteDialect  # noqa: E402
from causeflow.event import log as event_log  # noqa: E402
from causeflow.tenant import plans as tenant_plans  # noqa: E402
from causeflow.webhook import repository as webhook_store  # noqa: E402
from causeflow_sdk.models import sample_data  # noqa: E402
from tests.support.pg import fresh_database  # noqa: E402
from tests.support.processes import Deployment  # noqa: E402

ENV = {
    "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
    "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
    "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
    "CAUSEFLOW_LOG_LEVEL": "warning",
}
TENANTS = 3
SUB_TYPES = ["incident.created", "remediation.proposed"]  # what the subscriptions want
GEN_TYPES = ["incident.created", "remediation.proposed", "investigation.progress"]
PUBLISH_TYPE = "investigation.progress"  # no subscription wants it: publishing alone
DELIVERY_TYPE = "incident.created"
# GET /v1/deliveries searches: (label, query; None: a one-hour window mid-history)
SEARCHES = (
    ("status", "status=failed"),  # 5% of the deliveries
    ("pending", "status=pending"),  # none: the queue is empty
    ("type", "event=remediation.proposed"),  # half of them
    ("notype", f"event={PUBLISH_TYPE}"),  # no delivery has it
    ("time", None),
)
SPAN_MS = 60 * 86_400_000  # the generated history covers 60 days, ending an hour ago
BATCH = 50_000
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def ulid_time(ms: int) -> str:
    return "".join(_PAIRS[(ms >> shift) & 1023] for shift in (40, 30, 20, 10, 0))


def new_id(prefix: str, ms: int, n: int) -> str:
    """A valid `<prefix>_<ULID>`: the time, then a fixed tag and the row number (digits)."""
    return f"{prefix}_{ulid_time(ms)}BENCH0{n:010d}"


# --- the bulk store --------------------------------------------------------------------------


@dataclass
class Tenant:
    tenant_id: str
    api_key: str
    ingest_key: str
    subscriptions: list[str] = field(default_factory=list)
    head: int = 0
    sequences: dict[str, int] = field(default_factory=dict)
    early_event: str = ""  # the id of its 10th event
    recent_event: str = ""  # an id inside the stream's replay window


@dataclass
class Generated:
    events: list[tuple] = field(default_factory=list)
    deliveries: list[tuple] = field(default_factory=list)
    attempts: list[tuple] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"e": 0, "d": 0, "a": 0})
    purgeable: dict[str, int] = field(default_factory=lambda: {"e": 0, "d": 0, "a": 0})


EVENT_COLS = [
    "id",
    "tenant_id",
    "position",
    "type",
    "incident_id",
    "created_at",
    "test",
    "envelope",
    "traceparent",
]
DELIVERY_COLS = [
    "id",
    "tenant_id",
    "subscription_id",
    "event_id",
    "event_type",
    "status",
    "attempts",
    "next_attempt_at",
    "lease_owner",
    "lease_until",
    "manual",
    "last_status_code",
    "last_error",
    "payload",
    "created_at",
    "updated_at",
    "sequence",
    "ordered",
    "ordering_key",
]
ATTEMPT_COLS = [
    "id",
    "delivery_id",
    "tenant_id",
    "subscription_id",
    "created_at",
    "status_code",
    "latency_ms",
    "error",
    "response_body",
]


def data_templates() -> dict[str, str]:
    """Each generated type's `data` JSON with a slot for the incident id."""
    out = {}
    for name in GEN_TYPES:
        text = orjson.dumps(sample_data(name)).decode()
        out[name] = text.replace(sample_data(name)["incidentId"], "@INC@")
    return out


def generate_rows(
    tenants: list[Tenant], n_events: int, n_deliveries: int, args: argparse.Namespace, cutoff: int
) -> Iterator[Generated]:
    """The big store's rows in batches, in log order (round robin over the tenants)."""
    start_ms = int(time.time() * 1000) - 3_600_000 - SPAN_MS
    templates = data_templates()
    matched = n_events * len(SUB_TYPES) // len(GEN_TYPES)
    per_match = n_deliveries / max(matched, 1)
    every_attempt = max(1, round(1 / args.attempt_fraction)) if args.attempt_fraction else 0
    out = Generated()
    m = 0  # matched events so far
    for i in range(n_events):
        tenant = tenants[i % len(tenants)]
        tenant.head += 1
        ms = start_ms + i * SPAN_MS // n_events
        kind = GEN_TYPES[(i // len(tenants)) % len(GEN_TYPES)]
        event_id = new_id("evt", ms, i)
        incident = new_id("inc", ms, i // 7)
        stamp = ms_to_rfc3339(ms)
        envelope = (
            f'{{"id":"{event_id}","event":"{kind}","timestamp":"{stamp}",'
            f'"tenantId":"{tenant.tenant_id}","data":{templates[kind].replace("@INC@", incident)}}}'
        )
        out.events.append(
            (event_id, tenant.tenant_id, tenant.head, kind, incident, ms, False, envelope, None)
        )
        old = ms < cutoff
        out.purgeable["e"] += old
        if not tenant.early_event:
            tenant.early_event = event_id
        if kind in SUB_TYPES:
            count = min(len(tenant.subscriptions), int((m + 1) * per_match) - int(m * per_match))
            m += 1
            for sub in tenant.subscriptions[:count]:
                add_delivery(out, tenant, sub, event_id, kind, ms, every_attempt, old)
        if len(out.events) + len(out.deliveries) >= BATCH:
            yield out
            out = Generated(counts=out.counts, purgeable=out.purgeable)
    yield out


def add_delivery(
    out: Generated,
    tenant: Tenant,
    sub: str,
    event_id: str,
    kind: str,
    ms: int,
    every_attempt: int,
    old: bool,
) -> None:
    n = out.counts["d"]
    out.counts["d"] += 1
    seq = tenant.sequences.get(sub, 0) + 1
    tenant.sequences[sub] = seq
    roll = n % 100
    if roll < 94:
        status, tries, code, error = "succeeded", 1, 200, None
    elif roll < 99:
        status, tries, code, error = "failed", 8, 500, "HTTP 500"
    else:
        status, tries, code, error = "cancelled", 0, None, None
    at = ms + 5
    delivery_id = new_id("msg", at, n)
    out.deliveries.append(
        (delivery_id, tenant.tenant_id, sub, event_id, kind, status, tries, None, None, None)
        + (False, code, error, None, at, at + 40, seq, False, None)
    )
    out.purgeable["d"] += old
    if every_attempt and n % every_attempt == 0:
        out.attempts.append(
            (new_id("att", at, n), delivery_id, tenant.tenant_id, sub, at + 20, code or 200)
            + (35, error, None)
        )
        out.counts["a"] += 1
        out.purgeable["a"] += old


class SqliteBulk:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-400000")
        self.indexes: list[str] = []

    def drop_indexes(self) -> None:
        rows = self.db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
            "AND tbl_name IN ('events','deliveries','attempts')"
        ).fetchall()
        for name, sql in rows:
            self.indexes.append(sql)
            self.db.execute(f'DROP INDEX "{name}"')

    def write(self, batch: Generated) -> None:
        self.db.execute("BEGIN")
        for table, cols, rows in tables_of(batch):
            marks = ",".join("?" * len(cols))
            self.db.executemany(f"INSERT INTO {table} ({','.join(cols)}) VALUES ({marks})", rows)
        self.db.execute("COMMIT")

    def finish(self, tenants: list[Tenant]) -> None:
        for sql in self.indexes:
            self.db.execute(sql)
        self.db.execute("BEGIN")
        for sql, params in finishing_rows(tenants):
            self.db.execute(sql.replace("$1", "?").replace("$2", "?").replace("$3", "?"), params)
        self.db.execute("COMMIT")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()


def tables_of(batch: Generated) -> list[tuple[str, list[str], list[tuple]]]:
    return [
        ("events", EVENT_COLS, batch.events),
        ("deliveries", DELIVERY_COLS, batch.deliveries),
        ("attempts", ATTEMPT_COLS, batch.attempts),
    ]


def finishing_rows(tenants: list[Tenant]) -> Iterator[tuple[str, tuple]]:
    """Heads, dispatch cursors and subscription sequences at the generated log's end."""
    for t in tenants:
        yield "DELETE FROM event_heads WHERE tenant_id = $1", (t.tenant_id,)
        yield "INSERT INTO event_heads (tenant_id, position) VALUES ($1, $2)", (t.tenant_id, t.head)
        yield "DELETE FROM dispatch_cursors WHERE tenant_id = $1", (t.tenant_id,)
        yield (
            "INSERT INTO dispatch_cursors (tenant_id, position, generation) VALUES ($1, $2, 0)",
            (t.tenant_id, t.head),
        )
        for sub, last in t.sequences.items():
            yield "DELETE FROM subscription_sequences WHERE subscription_id = $1", (sub,)
            yield (
                "INSERT INTO subscription_sequences (subscription_id, tenant_id, last) "
                "VALUES ($1, $2, $3)",
                (sub, t.tenant_id, last),
            )


class PgBulk:
    def __init__(self, url: str) -> None:
        self.url = url
        self.indexes: list[str] = []

    async def _conn(self) -> Any:
        import asyncpg

        return await asyncpg.connect(self.url)

    def drop_indexes(self) -> None:
        asyncio.run(self._drop())

    async def _drop(self) -> None:
        conn = await self._conn()
        rows = await conn.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' "
            "AND i.tablename IN ('events','deliveries','attempts') AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        )
        for row in rows:
            self.indexes.append(row["indexdef"])
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        await conn.close()

    def write_all(self, batches: Iterator[Generated]) -> None:
        asyncio.run(self._write_all(batches))

    async def _write_all(self, batches: Iterator[Generated]) -> None:
        conn = await self._conn()
        await conn.execute("SET synchronous_commit = off")
        for batch in batches:
            async with conn.transaction():
                for table, cols, rows in tables_of(batch):
                    if rows:
                        await conn.copy_records_to_table(table, records=rows, columns=cols)
        await conn.close()

    def finish(self, tenants: list[Tenant]) -> None:
        asyncio.run(self._finish(tenants))

    async def _finish(self, tenants: list[Tenant]) -> None:
        conn = await self._conn()
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for sql in self.indexes:
            await conn.execute(sql)
        async with conn.transaction():
            for sql, params in finishing_rows(tenants):
                await conn.execute(sql, *params)
        await conn.execute("VACUUM ANALYZE events")
        await conn.execute("VACUUM ANALYZE deliveries")
        await conn.execute("VACUUM ANALYZE attempts")
        await conn.close()


def build_big_store(
    dep: Deployment, tenants: list[Tenant], args: argparse.Namespace, cutoff: int
) -> dict[str, Any]:
    t0 = time.perf_counter()
    bulk: Any = PgBulk(dep.database_url) if dep.database_url else SqliteBulk(sqlite_file(dep))
    for tenant in tenants:  # making tenants and subscriptions appended events already
        tenant.head = head_of(dep, tenant.tenant_id)
    bulk.drop_indexes()
    batches = generate_rows(tenants, args.events, args.deliveries, args, cutoff)
    last: list[Generated] = []

    def keep(it: Iterator[Generated]) -> Iterator[Generated]:
        for b in it:
            last[:] = [b]
            yield b

    if isinstance(bulk, PgBulk):
        bulk.write_all(keep(batches))
    else:
        for b in keep(batches):
            bulk.write(b)
    t_rows = time.perf_counter() - t0
    bulk.finish(tenants)
    total = time.perf_counter() - t0
    counts = last[0].counts if last else {}
    return {
        "rows_s": t_rows,
        "index_s": total - t_rows,
        "total_s": total,
        "events": args.events,
        "deliveries": counts.get("d", 0),
        "attempts": counts.get("a", 0),
        "purgeable": last[0].purgeable if last else {},
    }


def head_of(dep: Deployment, tenant_id: str) -> int:
    sql = "SELECT position FROM event_heads WHERE tenant_id = $1"
    if dep.database_url:
        import asyncpg

        async def one() -> int:
            conn = await asyncpg.connect(dep.database_url)
            value = await conn.fetchval(sql, tenant_id)
            await conn.close()
            return int(value or 0)

        return asyncio.run(one())
    db = sqlite3.connect(sqlite_file(dep))
    row = db.execute(sql.replace("$1", "?"), (tenant_id,)).fetchone()
    db.close()
    return int(row[0]) if row else 0


def sqlite_file(dep: Deployment) -> Path:
    return dep.data_dir / "causeflow.db"


# --- the service and its measures ------------------------------------------------------------


class Receiver:
    """A loopback webhook receiver in this process: counts what it is sent, answers 204."""

    def __init__(self) -> None:
        self.count = 0
        self.runner: Any = None
        self.url = ""

    async def start(self) -> None:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            await request.read()
            self.count += 1
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/{tail:.*}", hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def timed_load(
    http: aiohttp.ClientSession, url: str, headers: dict, body: bytes, seconds: float, clients: int
) -> tuple[float, list[float], int]:
    """(requests/s, latencies in s, errors): `clients` loops POSTing `body` for `seconds`."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        while (t0 := time.perf_counter()) < deadline:
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
                ok = resp.status < 300
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return len(latencies) / seconds, latencies, errors


async def get_ms(http: aiohttp.ClientSession, url: str, headers: dict, repeat: int) -> float:
    """The median time of `repeat` GETs of `url` (after one unmeasured), ms."""
    times = []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        async with http.get(url, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {url}: {resp.status} {await resp.text()}")
        if i:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def sse_first_frame_ms(
    http: aiohttp.ClientSession, base: str, key: str, last_id: str
) -> tuple[float, str]:
    """Time from the request to the first frame after the preamble, and that frame's kind."""
    headers = {"X-API-Key": key, "Last-Event-ID": last_id, "Accept": "text/event-stream"}
    t0 = time.perf_counter()
    async with http.get(base + "/v1/notifications/stream", headers=headers) as resp:
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("event:"):
                return (time.perf_counter() - t0) * 1000, line.split(":", 1)[1].strip()
            if line.startswith("id:"):
                return (time.perf_counter() - t0) * 1000, "event"
    return float("nan"), "closed"


@dataclass
class Store:
    name: str
    dep: Deployment
    tenants: list[Tenant]
    base: str = ""
    info: dict[str, Any] = field(default_factory=dict)


async def measure_store(store: Store, args: argparse.Namespace, receiver: Receiver) -> dict:
    t = store.tenants[0]
    out: dict[str, Any] = {}
    hdr = {"X-API-Key": t.api_key, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as http:
        base = store.base
        body = orjson.dumps({"event": PUBLISH_TYPE, "data": sample_data(PUBLISH_TYPE)})
        await timed_load(http, base + "/v1/events", hdr, body, 1.0, args.clients)  # warm-up
        rate, lat, err = await timed_load(
            http, base + "/v1/events", hdr, body, args.seconds, args.clients
        )
        out["publish_rate"], out["publish_p99"] = rate, percentile(lat, 99) * 1000
        ingest_url = f"{base}/v1/webhooks/{t.tenant_id}/custom"
        out["alert_rate"] = await alert_rate(http, ingest_url, t.ingest_key, args)
        out["delivery_rate"] = await delivery_rate(http, base, hdr, t, receiver, args)
        await page_latencies(http, base, t, out)
        await resume_latencies(http, base, t, out)
        await search_latencies(http, base, t, out)
    return out


async def alert_rate(
    http: aiohttp.ClientSession, url: str, key: str, args: argparse.Namespace
) -> float:
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    counter = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + args.seconds
    stamp = time.time_ns()

    async def client() -> None:
        nonlocal counter
        while (t0 := time.perf_counter()) < deadline:
            counter += 1
            body = orjson.dumps({"externalId": f"g-{stamp}-{counter}", "title": f"a {counter}"})
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status < 300:
                    latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(client() for _ in range(args.clients)))
    return len(latencies) / args.seconds


async def delivery_rate(
    http: aiohttp.ClientSession,
    base: str,
    hdr: dict,
    t: Tenant,
    receiver: Receiver,
    args: argparse.Namespace,
) -> float:
    """Deliveries/s from publishing `--delivery-events` (batches of 100) to the last 204."""
    item = {"event": DELIVERY_TYPE, "data": sample_data(DELIVERY_TYPE)}
    body = orjson.dumps({"events": [item] * 100})
    want = receiver.count + args.delivery_events * len(t.subscriptions)
    t0 = time.perf_counter()
    for _ in range(args.delivery_events // 100):
        async with http.post(base + "/v1/events/batch", data=body, headers=hdr) as resp:
            await resp.read()
    deadline = t0 + 300
    while receiver.count < want and time.perf_counter() < deadline:
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - t0
    t.head += args.delivery_events
    return (args.delivery_events * len(t.subscriptions)) / elapsed


async def page_latencies(http: aiohttp.ClientSession, base: str, t: Tenant, out: dict) -> None:
    hdr = {"X-API-Key": t.api_key}
    for where, pos in (("start", 10), ("middle", t.head // 2), ("end", max(0, t.head - 150))):
        url = f"{base}/v1/events?limit=100&cursor={encode_cursor([pos])}"
        out[f"page_{where}"] = await get_ms(http, url, hdr, 15)


async def resume_latencies(http: aiohttp.ClientSession, base: str, t: Tenant, out: dict) -> None:
    for label, last_id in (("early", t.early_event), ("recent", t.recent_event)):
        times, kind = [], ""
        for _ in range(6):
            ms, kind = await sse_first_frame_ms(http, base, t.api_key, last_id)
            times.append(ms)
        out[f"resume_{label}"] = statistics.median(times[1:])
        out[f"resume_{label}_kind"] = kind


async def search_latencies(http: aiohttp.ClientSession, base: str, t: Tenant, out: dict) -> None:
    hdr = {"X-API-Key": t.api_key}
    mid = int(time.time() * 1000) - 3_600_000 - SPAN_MS // 2
    window = f"since={ms_to_rfc3339(mid)}&until={ms_to_rfc3339(mid + 3_600_000)}"
    for label, query in SEARCHES:
        query = query or window
        out[f"search_{label}"] = await get_ms(
            http, f"{base}/v1/deliveries?limit=50&{query}", hdr, 10
        )


async def purge_p99(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    """Publish p99 while the retention sweep deletes the rows older than the cutoff."""
    t = store.tenants[0]
    hdr = {"X-API-Key": t.api_key, "Content-Type": "application/json"}
    body = orjson.dumps({"event": PUBLISH_TYPE, "data": sample_data(PUBLISH_TYPE)})
    proc = store.dep.processes[-1]  # the process that runs retention
    lat: list[float] = []
    t0 = time.perf_counter()  # the sweep starts `--sweep-seconds` after this, at the latest
    done_at = None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        url = store.base + "/v1/events"
        await timed_load(http, url, hdr, body, 1.0, args.clients)  # warm-up
        _, idle, _ = await timed_load(http, url, hdr, body, args.seconds, args.clients)
        while time.perf_counter() - t0 < args.sweep_seconds:
            await asyncio.sleep(0.05)
        while time.perf_counter() - t0 < args.sweep_seconds + args.purge_seconds:
            _, got, _ = await timed_load(http, url, hdr, body, 2.0, args.clients)
            lat.extend(got)
            if "retention purged" in proc.log_text():
                done_at = time.perf_counter() - t0 - args.sweep_seconds
                break
    return {
        "p99": percentile(lat, 99) * 1000,
        "idle_p99": percentile(idle, 99) * 1000,
        "samples": len(lat),
        "done_s": done_at,
    }


# --- plans -----------------------------------------------------------------------------------


class _Result:
    rowcount = 0

    def all(self) -> list:
        return []

    def first(self) -> None:
        return None

    def scalar_one(self) -> int:
        return 0

    def scalar(self) -> int:
        return 0


class Capture:
    """A connection that records each statement it is given and answers nothing."""

    def __init__(self, pg: bool) -> None:
        self.stmts: list[Any] = []
        self.db = SimpleNamespace(dialect=PostgresDialect() if pg else SqliteDialect())

    async def execute(self, stmt: Any, params: Any = None) -> _Result:
        self.stmts.append(stmt)
        return _Result()


async def plan_statements(t: Tenant, pg: bool) -> list[tuple[str, Any]]:
    from causeflow.webhook.repository import DeliveryQuery

    got: list[tuple[str, Any]] = []

    async def take(label: str, call: Any) -> None:
        cap = Capture(pg)
        await call(cap)
        got.extend((label, s) for s in cap.stmts)

    mid = t.head // 2
    await take(
        "page (GET /v1/events, cursor)",
        lambda c: event_log.read_after(c, t.tenant_id, mid, limit=101),
    )
    await take("resume: find", lambda c: event_log.find_event(c, t.tenant_id, t.early_event))
    await take("resume: count", lambda c: event_log.count_after(c, t.tenant_id, 10, 10000))
    await take(
        "resume: replay",
        lambda c: event_log.read_after(c, t.tenant_id, 10, limit=500, until_position=t.head),
    )
    now = int(time.time() * 1000)
    mid_ms = now - 3_600_000 - SPAN_MS // 2
    for label, q in (
        ("search by status", DeliveryQuery(status="failed")),
        ("search by status pending", DeliveryQuery(status="pending")),
        ("search by type", DeliveryQuery(event_types=frozenset({"remediation.proposed"}))),
        ("search by time", DeliveryQuery(since_ms=mid_ms, until_ms=mid_ms + 3_600_000)),
    ):
        await take(
            label,
            lambda c, q=q: webhook_store.list_deliveries(c, t.tenant_id, q, before=None, limit=51),
        )
    cutoff = now - 50 * 86_400_000
    await take("purge attempts", lambda c: webhook_store.purge_attempts(c, cutoff, 500))
    await take(
        "purge deliveries",
        lambda c: webhook_store.purge_finished_deliveries(
            c,
            cutoff,
            500,
            tenants=tenant_plans.tenants_without_retention("delivery_retention_days"),
        ),
    )
    await take("purge events", lambda c: event_log.purge_older(c, cutoff, 500))
    return got


def explain(dep: Deployment, t: Tenant) -> list[tuple[str, str, list[str]]]:
    from sqlalchemy.dialects import postgresql, sqlite

    stmts = asyncio.run(plan_statements(t, bool(dep.database_url)))
    dialect = postgresql.dialect() if dep.database_url else sqlite.dialect()
    compiled = [
        (label, str(s.compile(dialect=dialect, compile_kwargs={"literal_binds": True})))
        for label, s in stmts
    ]
    if dep.database_url:
        return asyncio.run(_pg_explain(dep.database_url, compiled))
    db = sqlite3.connect(sqlite_file(dep))
    out = []
    for label, sql in compiled:
        rows = db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        out.append((label, sql, [str(r[-1]) for r in rows]))
    db.close()
    return out


async def _pg_explain(
    url: str, compiled: list[tuple[str, str]]
) -> list[tuple[str, str, list[str]]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    out = []
    for label, sql in compiled:
        rows = await conn.fetch("EXPLAIN " + sql)
        out.append((label, sql, [r[0] for r in rows]))
    await conn.close()
    return out


# --- orchestration ---------------------------------------------------------------------------


def make_store(name: str, dep: Deployment, receiver: Receiver, args: argparse.Namespace) -> Store:
    dep.migrate()
    tenants = []
    for i in range(TENANTS):
        made = dep.create_tenant(f"growth-{i}")
        tenants.append(Tenant(made["tenantId"], made["apiKey"], made["ingestKey"]))
    store = Store(name, dep, tenants)
    start_service(store)
    asyncio.run(subscribe(store, receiver.url, args.subscriptions))
    return store


def start_service(store: Store, **env: str) -> None:
    server = store.dep.add_server(**env)
    store.base = server.base_url
    if store.dep.database_url:
        store.dep.add_worker(**env)


async def subscribe(store: Store, receiver_url: str, count: int) -> None:
    async with aiohttp.ClientSession() as http:
        for t in store.tenants:
            for i in range(count):
                body = {"url": f"{receiver_url}/{t.tenant_id}/{i}", "events": SUB_TYPES}
                async with http.post(
                    store.base + "/v1/webhook-subscriptions",
                    json=body,
                    headers={"X-API-Key": t.api_key},
                ) as resp:
                    got = await resp.json()
                    assert resp.status == 201, got
                    t.subscriptions.append(got["id"])


async def seed_empty(store: Store) -> None:
    """A few events in the empty store's measured log, so a resume has an early id to name."""
    t = store.tenants[0]
    item = {"event": PUBLISH_TYPE, "data": sample_data(PUBLISH_TYPE)}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            store.base + "/v1/events/batch",
            json={"events": [item] * 20},
            headers={"X-API-Key": t.api_key},
        ) as resp:
            ids = [e["event"]["id"] for e in (await resp.json())["items"]]
    t.head += 20
    t.early_event, t.recent_event = ids[9], ids[15]


def recent_id(dep: Deployment, t: Tenant, position: int) -> str:
    if dep.database_url:
        import asyncpg

        async def one() -> str:
            conn = await asyncpg.connect(dep.database_url)
            sql = "SELECT id FROM events WHERE tenant_id=$1 AND position=$2"
            value = await conn.fetchval(sql, t.tenant_id, position)
            await conn.close()
            return str(value)

        return asyncio.run(one())
    db = sqlite3.connect(sqlite_file(dep))
    row = db.execute(
        "SELECT id FROM events WHERE tenant_id=? AND position=?", (t.tenant_id, position)
    ).fetchone()
    db.close()
    return str(row[0])


def print_plans(name: str, plans: list[tuple[str, str, list[str]]]) -> None:
    print(f"\nquery plans, {name} store:")
    for label, sql, lines in plans:
        print(f"  -- {label}\n     {' '.join(sql.split())}")
        for line in lines:
            print(f"       {line}")


def report(empty: dict, big: dict, purges: list[tuple[str, dict]]) -> None:
    rows = [
        ("publish events/s (POST /v1/events)", "publish_rate"),
        ("publish p99 ms", "publish_p99"),
        ("inbound alerts/s", "alert_rate"),
        ("deliveries/s to loopback", "delivery_rate"),
        ("GET /v1/events page ms, cursor near start", "page_start"),
        ("GET /v1/events page ms, cursor mid-log", "page_middle"),
        ("GET /v1/events page ms, cursor near end", "page_end"),
        ("SSE resume ms, early Last-Event-ID", "resume_early"),
        ("SSE resume ms, Last-Event-ID in replay window", "resume_recent"),
        ("GET /v1/deliveries ms, status=failed", "search_status"),
        ("GET /v1/deliveries ms, status=pending (none)", "search_pending"),
        ("GET /v1/deliveries ms, event type (half)", "search_type"),
        ("GET /v1/deliveries ms, event type (none)", "search_notype"),
        ("GET /v1/deliveries ms, since/until (1 h)", "search_time"),
    ]
    print(f"\n  {'measure':<50} {'empty':>10} {'big':>10} {'big/empty':>10}")
    for label, key in rows:
        a, b = empty[key], big[key]
        print(f"  {label:<50} {a:>10,.1f} {b:>10,.1f} {b / a if a else math.nan:>10.2f}")
    print(
        f"  SSE first frame after early id: empty '{empty['resume_early_kind']}', "
        f"big '{big['resume_early_kind']}'"
    )
    for size, purge in purges:
        done = purge["done_s"]
        print(
            f"\n  retention purge ({size}): publish p99 {purge['p99']:.1f} ms over "
            f"{purge['samples']} requests while it ran (done after "
            f"{'more than the limit' if done is None else f'{done:.0f} s'}); idle just before "
            f"{purge['idle_p99']:.1f} ms; ratio {purge['p99'] / purge['idle_p99']:.2f}"
        )


def run(args: argparse.Namespace, stack: ExitStack) -> None:
    backend = "PostgreSQL" if args.backend == "pg" else "SQLite"
    print(f"machine: {machine()}; backend {backend}")
    print(
        f"store: {args.events:,} events, {args.deliveries:,} deliveries, attempts for "
        f"{args.attempt_fraction:.0%}; {TENANTS} tenants x {args.subscriptions} subscriptions; "
        f"{args.clients} clients, {args.seconds:g} s per rate"
    )
    receiver = Receiver()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(receiver.start())
    # the receiver answers from a thread of its own while the measures run in others
    import threading

    threading.Thread(target=loop.run_forever, daemon=True).start()
    stores = {}
    for name in ("empty", "big"):
        url = stack.enter_context(fresh_database("cf_growth")) if args.backend == "pg" else None
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"cf-growth-{name}-")))
        dep = Deployment(tmp, database_url=url, env=ENV)
        stack.callback(dep.stop_all)
        stores[name] = make_store(name, dep, receiver, args)
    empty, big = stores["empty"], stores["big"]
    asyncio.run(seed_empty(empty))
    results = {"empty": asyncio.run(measure_store(empty, args, receiver))}
    print("empty store measured", flush=True)
    big.dep.stop_all()
    keep_days = (SPAN_MS / 86_400_000) * (1 - args.purge_fraction)
    cutoff = int(time.time() * 1000) - int(keep_days * 86_400_000)
    built = build_big_store(big.dep, big.tenants, args, cutoff)
    print(
        f"generated {built['events']:,} events, {built['deliveries']:,} deliveries, "
        f"{built['attempts']:,} attempts: rows {built['rows_s']:.0f} s, indexes + finish "
        f"{built['index_s']:.0f} s, total {built['total_s']:.0f} s; older than the purge "
        f"cutoff: {built['purgeable']}",
        flush=True,
    )
    t = big.tenants[0]
    t.recent_event = recent_id(big.dep, t, t.head - 5000)
    start_service(big)
    results["big"] = asyncio.run(measure_store(big, args, receiver))
    print("big store measured", flush=True)
    print_plans("empty", explain(empty.dep, empty.tenants[0]))
    print_plans("big", explain(big.dep, t))
    purges = []
    sizes = args.purge_batch.split(",") if not args.no_purge else []
    for k, size in enumerate(sizes):
        batch, _, pause = size.partition(":")
        env = {} if batch == "default" else {"CAUSEFLOW_RETENTION_BATCH_SIZE": batch}
        if pause:
            env["CAUSEFLOW_RETENTION_PAUSE_RATIO"] = pause
        # each phase purges its own slice of the history, the same size as the others
        keep = (SPAN_MS / 86_400_000) * (1 - args.purge_fraction * (k + 1) / len(sizes))
        big.dep.stop_all()
        start_service(
            big,
            CAUSEFLOW_RETENTION_DAYS=f"{keep:.4f}",
            CAUSEFLOW_RETENTION_SWEEP_SECONDS=str(args.sweep_seconds),
            **env,
            CAUSEFLOW_LOG_LEVEL="info",
        )
        label = "default settings" if batch == "default" else f"batches of {batch}"
        purges.append(
            (label + (f", pause ratio {pause}" if pause else ""), asyncio.run(purge_p99(big, args)))
        )
    report(results["empty"], results["big"], purges)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "pg"], default="sqlite")
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--deliveries", type=int, default=10_000_000)
    parser.add_argument("--attempt-fraction", type=float, default=0.1)
    parser.add_argument("--subscriptions", type=int, default=3, help="per tenant")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--delivery-events", type=int, default=1000)
    parser.add_argument("--purge-fraction", type=float, default=0.1, help="of the history")
    parser.add_argument("--purge-seconds", type=float, default=120.0, help="measure at most")
    parser.add_argument("--sweep-seconds", type=float, default=12.0, help="after the start")
    parser.add_argument(
        "--purge-batch",
        default="default",
        help="one purge phase each: a batch size, size:pause_ratio, or default",
    )
    parser.add_argument("--no-purge", action="store_true")
    args = parser.parse_args()
    with ExitStack() as stack:
        run(args, stack)


if __name__ == "__main__":
    main()

"""A PostgreSQL deployment of real processes (two `serve`, two `worker`) and the HTTP calls the
cluster tests drive it with from outside: publish, read the log, subscribe, list deliveries,
scrape metrics. Traffic generators that keep running through crashes are in `traffic.py`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from causeflow_sdk.models import sample_data
from tests.support.pg import fresh_database, require_pg
from tests.support.ports import free_port
from tests.support.processes import Deployment, ServiceProcess

# Small schedules so retries, leases and keepalives happen within a test's patience.
ENV = {
    "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
    "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
    "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
    "CAUSEFLOW_WEBHOOK_RETRY_SCHEDULE": "0.5s,0.5s,1s,1s,2s",
    "CAUSEFLOW_SSE_PING_SECONDS": "1",
    "CAUSEFLOW_EVENT_POLL_SECONDS": "0.5",
    "CAUSEFLOW_WEBHOOK_POLL_SECONDS": "0.5",
    # A crashed worker's leases run out after 3 s (still longer than the 1 s request timeout).
    "CAUSEFLOW_WEBHOOK_LEASE_SECONDS": "3",
    "CAUSEFLOW_WEBHOOK_TIMEOUT_SECONDS": "1",
    "CAUSEFLOW_LOG_LEVEL": "warning",
}
EVENT = "incident.created"
TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass
class Cluster:
    deployment: Deployment
    tenant: dict[str, str]

    @property
    def servers(self) -> list[ServiceProcess]:
        return self.deployment.servers

    @property
    def workers(self) -> list[ServiceProcess]:
        return self.deployment.workers

    @property
    def bases(self) -> list[str]:
        return [s.base_url for s in self.servers]

    @property
    def headers(self) -> dict[str, str]:
        """The tenant's all-scopes API key."""
        return {"X-API-Key": self.tenant["apiKey"]}


def metrics_url(proc: ServiceProcess) -> str:
    """Where a process serves /metrics: its API port, or a worker's metrics port."""
    if proc.port is not None:
        return proc.base_url + "/metrics"
    return f"http://127.0.0.1:{proc.env['CAUSEFLOW_WORKER_METRICS_PORT']}/metrics"


def start_all(processes: list[ServiceProcess]) -> None:
    """Start several processes at once; return when every one is ready."""
    for proc in processes:
        if proc.role == "worker":
            proc.ready_log = " running"  # printed once its components have started
        proc.start(wait=False)
    for proc in processes:
        proc.wait_ready(30)


def restart_now(proc: ServiceProcess) -> None:
    """Start a stopped (or killed) process again on its port and wait until it is ready."""
    start_all([proc])


@contextmanager
def pg_cluster(
    tmp_path: Path,
    *,
    servers: int = 2,
    workers: int = 2,
    env: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """`servers` API processes and `workers` workers on one fresh PostgreSQL database."""
    require_pg()
    with (
        fresh_database("cf_cluster") as url,
        Deployment(tmp_path, url, env={**ENV, **(env or {})}) as deployment,
    ):
        tenant = deployment.create_tenant("acme")
        procs = [deployment.add_server(start=False) for _ in range(servers)]
        procs += [
            deployment.add_worker(
                start=False, CAUSEFLOW_WORKER_METRICS_PORT=str(free_port()), **(worker_env or {})
            )
            for _ in range(workers)
        ]
        start_all(procs)
        yield Cluster(deployment, tenant)


# --- HTTP, from outside -------------------------------------------------------------------


async def publish(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], title: str = "x"
) -> str:
    body = {"event": EVENT, "data": sample_data(EVENT, title=title)}
    async with session.post(
        base + "/v1/events", json=body, headers=headers, timeout=TIMEOUT
    ) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["id"])


async def publish_many(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], count: int, clients: int = 8
) -> list[str]:
    left = [count]
    ids: list[str] = []

    async def client() -> None:
        while left[0] > 0:
            left[0] -= 1
            ids.append(await publish(session, base, headers))

    await asyncio.gather(*(client() for _ in range(clients)))
    return ids


async def paged(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    """Every item of a cursor-paged list."""
    items: list[dict[str, Any]] = []
    query = {"limit": "100", **params}
    while True:
        async with session.get(url, params=query, headers=headers, timeout=TIMEOUT) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.json()
        items += page["items"]
        if not page["cursor"]:
            return items
        query["cursor"] = page["cursor"]


async def log_ids(session: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> list[str]:
    """The tenant's event ids in log order."""
    return [e["id"] for e in await paged(session, base + "/v1/events", headers)]


async def subscribe(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], url: str
) -> str:
    body = {"url": url, "events": [EVENT]}
    async with session.post(
        base + "/v1/webhook-subscriptions", json=body, headers=headers, timeout=TIMEOUT
    ) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["id"])


async def deliveries(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], sub_id: str
) -> list[dict[str, Any]]:
    url = f"{base}/v1/webhook-subscriptions/{sub_id}/deliveries"
    return await paged(session, url, headers)


async def wait_all_succeeded(
    session: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str],
    sub_ids: list[str],
    per_subscription: int,
    timeout: float = 30,
) -> dict[str, list[dict[str, Any]]]:
    """Poll the deliveries API until each subscription has `per_subscription` deliveries, every
    one `succeeded`; return them. Fails with the statuses seen at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        found = {sid: await deliveries(session, base, headers, sid) for sid in sub_ids}
        seen = {sid: Counter(d["status"] for d in items) for sid, items in found.items()}
        if all(c == Counter(succeeded=per_subscription) for c in seen.values()):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {per_subscription} succeeded each, got {seen}")
        await asyncio.sleep(0.5)


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[tuple[str, tuple], float]:
    """A /metrics page as {(sample name, sorted labels): value}."""
    async with session.get(url, timeout=TIMEOUT) as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    out: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a labelled child appears on first use)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- receivers ------------------------------------------------------------------------------


@dataclass
class SlowVaried:
    """Answer 200 after a random pause in [low, high] s: a receiver taking real time, so that
    many attempts are in flight at once."""

    low: float
    high: float
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    # webhook-id -> time.monotonic() of its latest answer
    answered: dict[str, float] = field(default_factory=dict)

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        await asyncio.sleep(self.rng.uniform(self.low, self.high))
        self.answered[request.headers.get("webhook-id", "")] = time.monotonic()
        return web.Response(status=200)


def msg_ids(requests: list[Any]) -> Counter[str]:
    """How many times each delivery (`webhook-id`) reached a receiver."""
    return Counter(r.headers["webhook-id"] for r in requests)

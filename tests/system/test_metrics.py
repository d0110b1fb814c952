"""/metrics of API nodes and of workers (`CAUSEFLOW_WORKER_METRICS_PORT`) during traffic: every
operator-facing series moves, and the counters agree with what was done from outside (events
appended = events accepted; succeeded deliveries = deliveries the API reports succeeded)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.cluster import (
    EVENT,
    SlowVaried,
    metric,
    metrics_url,
    pg_cluster,
    scrape,
    subscribe,
    wait_all_succeeded,
)
from tests.support.receiver import Status, ThreadedReceiver
from tests.support.sse import SseStream
from tests.support.traffic import STREAM, Publisher, finish, run_all

pytestmark = pytest.mark.process

Samples = dict[tuple[str, tuple], float]


def total(scrapes: list[Samples], name: str, **labels: str) -> float:
    return sum(metric(s, name, **labels) for s in scrapes)


def moved(after: list[Samples], before: list[Samples], name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


async def post_alert(
    session: aiohttp.ClientSession, base: str, tenant: dict[str, str], status: str
) -> str:
    body = {"externalId": "disk-full-1", "title": "Disk full", "status": status}
    async with session.post(
        f"{base}/v1/webhooks/{tenant['tenantId']}/custom",
        json=body,
        headers={"X-API-Key": tenant["ingestKey"]},
    ) as resp:
        assert resp.status == 202, await resp.text()
        return str((await resp.json())["alerts"][0]["action"])


async def test_metrics_of_servers_and_workers_move(tmp_path: Path) -> None:
    # Retries exhaust within a second, so the failing endpoint yields `failed` outcomes soon.
    env = {"CAUSEFLOW_WEBHOOK_RETRY_SCHEDULE": "0.3s,0.3s"}
    with ThreadedReceiver() as receiver, pg_cluster(tmp_path, env=env) as cluster:
        receiver.set_behavior("/slow", SlowVaried(0.2, 0.4))
        receiver.set_behavior("/broken", Status(500))
        hdr, bases = cluster.headers, cluster.bases
        servers = [metrics_url(p) for p in cluster.servers]
        workers = [metrics_url(p) for p in cluster.workers]
        async with aiohttp.ClientSession() as session:
            before_s = [await scrape(session, u) for u in servers]
            before_w = [await scrape(session, u) for u in workers]
            # before any subscription: its incident.created is delivered nowhere
            actions = [
                await post_alert(session, bases[1], cluster.tenant, s)
                for s in ("firing", "firing", "resolved")
            ]
            assert actions == ["created", "attached", "resolved"]
            slow = await subscribe(session, bases[0], hdr, receiver.url_for("/slow"))
            await subscribe(session, bases[0], hdr, receiver.url_for("/broken"))
            streams = [SseStream(session, bases[0] + STREAM, hdr) for _ in range(3)]
            for stream in streams:
                await stream.open()

            publishing = asyncio.Event()
            publishers = [Publisher(session, bases, hdr, name=f"p{i}", pause=0.05) for i in (1, 2)]
            tasks = run_all(publishing, *publishers)
            # the queue gauges refresh every few seconds inside each worker: watch for them
            depth_seen = age_seen = 0.0
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not (depth_seen > 0 and age_seen > 0):
                await asyncio.sleep(0.5)
                during_w = [await scrape(session, u) for u in workers]
                depth_seen = max(depth_seen, total(during_w, "causeflow_delivery_queue_depth"))
                age_seen = max(
                    age_seen, total(during_w, "causeflow_delivery_queue_oldest_age_seconds")
                )
            during_s = [await scrape(session, u) for u in servers]
            await finish(publishing, tasks)
            for stream in streams:
                await stream.close()
            accepted = sum(len(p.accepted) for p in publishers)
            done = await wait_all_succeeded(session, bases[1], hdr, [slow], accepted)
            # the /broken deliveries' last retries, then exhaustion: watch for the first failure
            async with asyncio.timeout(30):
                while True:
                    after_w = [await scrape(session, u) for u in workers]
                    if moved(after_w, before_w, "causeflow_deliveries_total", outcome="failed"):
                        break
                    await asyncio.sleep(0.2)
            after_s = [await scrape(session, u) for u in servers]

    # API nodes: every accepted event counted once, by the node that committed it
    appended = moved(after_s, before_s, "causeflow_events_appended_total", type=EVENT)
    assert appended == accepted + 1 > 20  # + the incident the alert opened
    assert moved(after_s, before_s, "causeflow_http_requests_total", method="POST", status="2xx")
    assert metric(during_s[0], "causeflow_sse_connections") == 3
    assert metric(during_s[1], "causeflow_sse_connections") == 0
    assert total(after_s, "causeflow_sse_connections") == 0
    for outcome in ("created", "attached", "resolved"):
        name = "causeflow_inbound_alerts_total"
        assert moved(after_s, before_s, name, provider="custom", outcome=outcome) == 1, outcome

    # workers: outcomes, latency, queue
    succeeded = moved(after_w, before_w, "causeflow_deliveries_total", outcome="succeeded")
    assert succeeded == len(done[slow]) == accepted
    assert moved(after_w, before_w, "causeflow_deliveries_total", outcome="retrying") > 0
    assert moved(after_w, before_w, "causeflow_deliveries_total", outcome="failed") > 0
    attempts = moved(after_w, before_w, "causeflow_delivery_attempt_seconds_count")
    assert attempts >= succeeded + 1
    fast = moved(after_w, before_w, "causeflow_delivery_attempt_seconds_bucket", le="0.1")
    assert fast < attempts  # the slow receiver's 0.2-0.4 s answers land in higher buckets
    assert moved(after_w, before_w, "causeflow_delivery_attempt_seconds_sum") >= 0.2 * succeeded
    assert depth_seen > 0 and age_seen > 0

"""A subscription PATCHed from a Redis stream to a NATS JetStream subject while events keep
coming, with the deliveries made by separate `causeflow worker` processes on PostgreSQL: every
event committed after the PATCH was answered goes to NATS only; nothing is lost (each event is in
one place or the other); no entry reaches the old stream later than an attempt already in
flight when the answer came could land; and no worker keeps its Redis connection open (counted
with CLIENT LIST on a private redis-server)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from causeflow_sdk.models import sample_data
from tests.support.brokers import broker_process, nats_destination, unique
from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment
from tests.webhook.test_worker_processes import ENV, api, wait_statuses

pytestmark = pytest.mark.process

# an attempt in flight when the PATCH was answered ends within the request timeout (1 s here)
IN_FLIGHT_MS = 1000


class Publisher(threading.Thread):
    """POST events until stopped; remembers when each one was answered (committed)."""

    def __init__(self, base_url: str, creds: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base_url, self.creds = base_url, creds
        self.stop = threading.Event()
        self.answered: list[tuple[str, float]] = []  # (event id, wall time sent) in order
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with api(self.base_url, self.creds) as client:
                while not self.stop.is_set():
                    sent = time.time()
                    data = sample_data("incident.created")
                    resp = client.post(
                        "/v1/events", json={"event": "incident.created", "data": data}
                    )
                    assert resp.status_code == 201, resp.text
                    self.answered.append((resp.json()["id"], sent))
                    time.sleep(0.02)
        except BaseException as exc:  # reported by the test
            self.error = exc


def _redis_entries(client: redis.Redis, stream: str) -> list[tuple[int, str]]:
    """(entry time in ms, event id) of each entry of the stream."""
    out = []
    for entry_id, fields in client.xrange(stream):
        out.append((int(entry_id.split(b"-")[0]), orjson.loads(fields[b"body"])["id"]))
    return out


def _other_clients(client: redis.Redis) -> list[dict[str, Any]]:
    me = client.client_id()
    return [c for c in client.client_list() if int(c["id"]) != me]


def _wait_no_clients(client: redis.Redis, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while others := _other_clients(client):
        if time.monotonic() > deadline:
            return others
        time.sleep(0.1)
    return []


def _wait_failing(client: httpx.Client, sub_id: str, count: int) -> None:
    """Until each of the `count` deliveries has failed at least twice."""
    deadline = time.monotonic() + 30
    while True:
        resp = client.get(f"/v1/webhook-subscriptions/{sub_id}/deliveries", params={"limit": 100})
        items = resp.json()["items"]
        if len(items) == count and all(i["attempts"] >= 2 for i in items):
            return
        assert time.monotonic() < deadline, items[:2]
        time.sleep(0.1)


@pytest.mark.parametrize("worker_count", [1, 2])
def test_patch_redis_to_nats_while_publishing(tmp_path: Path, worker_count: int) -> None:
    require_pg()
    loop = asyncio.new_event_loop()
    nats_cm = nats_destination()
    nats_dest = loop.run_until_complete(nats_cm.__aenter__())
    stream = unique("cf-test-retarget-")
    try:
        with (
            broker_process("redis", tmp_path / "redis") as private,
            fresh_database() as url,
            Deployment(tmp_path, url, env=ENV) as deployment,
        ):
            reader = redis.Redis(host="127.0.0.1", port=private.port, socket_timeout=5)
            creds = deployment.create_tenant("acme")
            server = deployment.add_server(CAUSEFLOW_RUN_WORKERS="false")
            for _ in range(worker_count):
                deployment.add_worker()
            with api(server.base_url, creds) as client:
                resp = client.post(
                    "/v1/webhook-subscriptions",
                    json={
                        "type": "redis",
                        "url": f"redis://127.0.0.1:{private.port}/0",
                        "options": {"stream": stream},
                        "events": ["incident.created"],
                    },
                )
                assert resp.status_code == 201, resp.text
                sub = resp.json()
                publisher = Publisher(server.base_url, creds)
                publisher.start()
                deadline = time.monotonic() + 30
                while len(_redis_entries(reader, stream)) < 30:
                    assert time.monotonic() < deadline and publisher.error is None
                    time.sleep(0.05)
                resp = client.patch(
                    f"/v1/webhook-subscriptions/{sub['id']}",
                    json={"type": "nats", "url": nats_dest.url, "options": nats_dest.options},
                )
                assert resp.status_code == 200, resp.text
                patched_at = time.time()
                time.sleep(4)  # well past any cache of the subscription
                publisher.stop.set()
                publisher.join(10)
                assert publisher.error is None, publisher.error
                total = len(publisher.answered)
                wait_statuses(client, sub["id"], {"succeeded": total}, timeout=60)
            in_redis = _redis_entries(reader, stream)
            leftover = _wait_no_clients(reader, timeout=5)
            reader.close()
        nats_ids = [
            orjson.loads(m.body)["id"]
            for m in loop.run_until_complete(nats_dest.messages(1, timeout=5))
        ]
    finally:
        loop.run_until_complete(nats_cm.__aexit__(None, None, None))
        loop.close()
    redis_ids = {event_id for _ms, event_id in in_redis}
    after = [event_id for event_id, sent in publisher.answered if sent > patched_at]
    assert after, "no event was committed after the PATCH"
    assert not redis_ids & set(after), "an event committed after the PATCH went to Redis"
    assert set(after) <= set(nats_ids)
    everything = {event_id for event_id, _sent in publisher.answered}
    assert redis_ids | set(nats_ids) == everything  # nothing lost
    late = [ms for ms, _id in in_redis if ms > patched_at * 1000 + IN_FLIGHT_MS]
    assert not late, f"{len(late)} entries reached the old stream after the change"
    assert not leftover, f"Redis clients still connected: {leftover}"


def test_patch_reaches_retrying_deliveries_at_once(tmp_path: Path) -> None:
    """Deliveries retrying against a stopped Redis when the PATCH is answered (none in flight:
    the broker refuses at once) all go to NATS, even when Redis is back a moment later."""
    require_pg()
    env = {**ENV, "CAUSEFLOW_WEBHOOK_RETRY_SCHEDULE": ",".join(["0.1s"] * 60)}
    loop = asyncio.new_event_loop()
    nats_cm = nats_destination()
    nats_dest = loop.run_until_complete(nats_cm.__aenter__())
    stream = unique("cf-test-retarget-")
    count = 20
    try:
        with (
            broker_process("redis", tmp_path / "redis") as private,
            fresh_database() as url,
            Deployment(tmp_path, url, env=env) as deployment,
        ):
            creds = deployment.create_tenant("acme")
            server = deployment.add_server(CAUSEFLOW_RUN_WORKERS="false")
            deployment.add_worker()
            with api(server.base_url, creds) as client:
                resp = client.post(
                    "/v1/webhook-subscriptions",
                    json={
                        "type": "redis",
                        "url": f"redis://127.0.0.1:{private.port}/0",
                        "options": {"stream": stream},
                        "events": ["incident.created"],
                    },
                )
                assert resp.status_code == 201, resp.text
                sub = resp.json()
                private.stop()
                for _ in range(count):
                    data = sample_data("incident.created")
                    resp = client.post(
                        "/v1/events", json={"event": "incident.created", "data": data}
                    )
                    assert resp.status_code == 201, resp.text
                _wait_failing(client, sub["id"], count)
                resp = client.patch(
                    f"/v1/webhook-subscriptions/{sub['id']}",
                    json={"type": "nats", "url": nats_dest.url, "options": nats_dest.options},
                )
                assert resp.status_code == 200, resp.text
                private.start()
                wait_statuses(client, sub["id"], {"succeeded": count}, timeout=30)
            reader = redis.Redis(host="127.0.0.1", port=private.port, socket_timeout=5)
            in_redis = _redis_entries(reader, stream)
            reader.close()
        got = loop.run_until_complete(nats_dest.read())
    finally:
        loop.run_until_complete(nats_cm.__aexit__(None, None, None))
        loop.close()
    assert not in_redis, f"{len(in_redis)} deliveries went to the old stream after the PATCH"
    assert len({orjson.loads(m.body)["id"] for m in got}) == count

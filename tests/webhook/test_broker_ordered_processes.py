"""An ordered Redis Streams subscription served by several `causeflow worker` processes on one
PostgreSQL database, with a burst of events, and once with a kill -9 of one worker mid-burst:
the stream (read with XRANGE, as a consumer would) holds every event at least once, and the
sequence field, duplicates removed, runs 1, 2, 3, ... in stream order with no gap."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import redis

from causeflow_sdk.models import sample_data
from tests.support.brokers import REDIS_PORT, unique
from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment
from tests.webhook.test_worker_processes import ENV, api, wait_statuses

pytestmark = pytest.mark.process

BURST = 200


def _stream_sequences(client: redis.Redis, stream: str) -> list[int]:
    return [int(fields[b"x-causeflow-sequence"]) for _id, fields in client.xrange(stream)]


def _wait_entries(client: redis.Redis, stream: str, count: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(seen := _stream_sequences(client, stream)) < count:
        assert time.monotonic() < deadline, f"{len(seen)} of {count} in the stream"
        time.sleep(0.1)
    return seen


def _publish(client: httpx.Client, count: int) -> None:
    for _ in range(count):
        data = sample_data("incident.created")
        resp = client.post("/v1/events", json={"event": "incident.created", "data": data})
        assert resp.status_code == 201, resp.text


def _assert_in_order(sequences: list[int]) -> None:
    kept: list[int] = []
    for s in sequences:  # a redelivery repeats an entry already written; keep the first
        if s not in kept:
            kept.append(s)
    assert kept == list(range(1, BURST + 1)), kept
    # a repeat may only follow its first copy directly or in the run after a crash: never an
    # entry with a lower sequence after a higher one was written except an exact repeat
    highest = 0
    for s in sequences:
        assert s <= highest + 1, (s, highest)
        highest = max(highest, s)


@pytest.mark.parametrize(("worker_count", "kill"), [(2, False), (3, False), (3, True)])
def test_ordered_redis_stream_across_workers(tmp_path: Path, worker_count: int, kill: bool) -> None:
    require_pg()
    stream = unique("cf-test-ordered-")
    reader = redis.Redis(host="127.0.0.1", port=REDIS_PORT, socket_timeout=5)
    try:
        with fresh_database() as url, Deployment(tmp_path, url, env=ENV) as deployment:
            creds = deployment.create_tenant("acme")
            server = deployment.add_server(CAUSEFLOW_RUN_WORKERS="false")
            workers = [deployment.add_worker() for _ in range(worker_count)]
            with api(server.base_url, creds) as client:
                resp = client.post(
                    "/v1/webhook-subscriptions",
                    json={
                        "type": "redis",
                        "url": f"redis://127.0.0.1:{REDIS_PORT}/0",
                        "options": {"stream": stream},
                        "events": ["incident.created"],
                        "ordering": "ordered",
                    },
                )
                assert resp.status_code == 201, resp.text
                sub = resp.json()
                if kill:
                    _publish(client, BURST // 2)
                    _wait_entries(reader, stream, BURST // 4, timeout=30)
                    workers[0].kill9()
                    _publish(client, BURST - BURST // 2)
                else:
                    _publish(client, BURST)
                wait_statuses(client, sub["id"], {"succeeded": BURST}, timeout=90)
        _assert_in_order(_wait_entries(reader, stream, BURST, timeout=5))
    finally:
        reader.delete(stream)
        reader.close()

"""Sequence numbers with several dispatchers racing on one tenant: a `causeflow serve` and two
`causeflow worker` processes on one PostgreSQL database dispatch the same burst while its
subscriptions are PATCHed (events changed), disabled and enabled, a new one is created, and one
worker is killed with -9 mid-burst. Each subscription's deliveries then carry 1..n, each number
once, none skipped."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from causeflow_sdk.models import sample_data
from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment
from tests.support.receiver import ThreadedReceiver
from tests.webhook.test_worker_processes import ENV, _pg_rows, api

pytestmark = pytest.mark.process

EVENTS = 240
TYPES = ["incident.created", "incident.status_changed"]


def _publisher(base_url: str, creds: dict[str, str], offset: int) -> None:
    with api(base_url, creds) as client:
        for i in range(EVENTS // 2):
            event = TYPES[(i + offset) % 2]
            resp = client.post("/v1/events", json={"event": event, "data": sample_data(event)})
            assert resp.status_code == 201, resp.text


def _sequences(url: str) -> dict[str, list[int]]:
    rows = _pg_rows(
        url, "SELECT subscription_id, sequence FROM deliveries WHERE sequence IS NOT NULL"
    )
    seqs: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        seqs[row["subscription_id"]].append(int(row["sequence"]))
    return seqs


def test_racing_dispatchers_number_every_subscription_gap_free(tmp_path: Path) -> None:
    require_pg()
    with (
        fresh_database() as url,
        Deployment(tmp_path, url, env=ENV) as deployment,
        ThreadedReceiver() as receiver,
    ):
        creds = deployment.create_tenant("acme")
        server = deployment.add_server()
        workers = [deployment.add_worker() for _ in range(2)]
        with api(server.base_url, creds) as client:
            subs = []
            for events in (["incident.created"], TYPES, ["incident.status_changed"]):
                resp = client.post(
                    "/v1/webhook-subscriptions",
                    json={"url": receiver.url_for("/s"), "events": events},
                )
                assert resp.status_code == 201, resp.text
                subs.append(resp.json()["id"])
            threads = [
                threading.Thread(target=_publisher, args=(server.base_url, creds, k))
                for k in range(2)
            ]
            for t in threads:
                t.start()
            for round_ in range(6):
                time.sleep(0.15)
                events = [TYPES[round_ % 2]] if round_ % 3 else TYPES
                resp = client.patch(f"/v1/webhook-subscriptions/{subs[0]}", json={"events": events})
                assert resp.status_code == 200, resp.text
                resp = client.patch(
                    f"/v1/webhook-subscriptions/{subs[1]}", json={"enabled": round_ % 2 == 1}
                )
                assert resp.status_code == 200, resp.text
                if round_ == 2:
                    resp = client.post(
                        "/v1/webhook-subscriptions",
                        json={"url": receiver.url_for("/s"), "events": TYPES},
                    )
                    assert resp.status_code == 201, resp.text
                    subs.append(resp.json()["id"])
                if round_ == 3:
                    workers[0].kill9()
            for t in threads:
                t.join()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                cursor = _pg_rows(url, "SELECT position FROM dispatch_cursors")
                head = _pg_rows(url, "SELECT max(position) AS p FROM events")
                if cursor and head and cursor[0]["position"] >= head[0]["p"]:
                    break
                time.sleep(0.2)
        seqs = _sequences(url)
    assert set(subs) <= set(seqs), seqs.keys()
    for sid, numbers in seqs.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), (sid, sorted(numbers))

"""Ordered delivery across real `causeflow worker` processes on one PostgreSQL database, with a
flaky receiver and a kill -9 of one worker mid-flight: per lane (ordering key value) the first
attempts arrive in strictly increasing sequence, and every sequence arrives (deduplicated by
`webhook-id`) and succeeds, none skipped."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from causeflow_sdk.models import sample_data
from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment
from tests.support.receiver import ThreadedReceiver
from tests.webhook.test_worker_processes import ENV, api, wait_statuses

pytestmark = pytest.mark.process

LANES = ["inc_" + c * 26 for c in "ABC"]
PER_LANE = 12


@dataclass
class Flaky:
    """Fail the first 0, 1 or 2 attempts of each delivery (seeded per webhook-id) with a 500,
    after a short pause, so attempts are in flight when a worker dies; then answer 200."""

    seed: int
    pause: float = 0.02
    plans: dict[str, int] = field(default_factory=dict)

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        await asyncio.sleep(self.pause)
        msg = request.headers["webhook-id"]
        left = self.plans.setdefault(msg, random.Random(f"{self.seed}:{msg}").choice([0, 0, 1, 2]))
        if left > 0:
            self.plans[msg] = left - 1
            return web.Response(status=500)
        return web.Response(status=200)


def _publish(client: httpx.Client) -> None:
    for i in range(PER_LANE * len(LANES)):
        data = sample_data("incident.created", incidentId=LANES[i % len(LANES)])
        resp = client.post("/v1/events", json={"event": "incident.created", "data": data})
        assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("worker_count", [2, 3])
def test_ordered_lanes_survive_a_killed_worker(tmp_path: Path, worker_count: int) -> None:
    require_pg()
    total = PER_LANE * len(LANES)
    with (
        fresh_database() as url,
        Deployment(tmp_path, url, env=ENV) as deployment,
        ThreadedReceiver() as receiver,
    ):
        receiver.set_behavior("/ordered", Flaky(seed=worker_count))
        creds = deployment.create_tenant("acme")
        server = deployment.add_server(CAUSEFLOW_RUN_WORKERS="false")
        workers = [deployment.add_worker() for _ in range(worker_count)]
        with api(server.base_url, creds) as client:
            resp = client.post(
                "/v1/webhook-subscriptions",
                json={
                    "url": receiver.url_for("/ordered"),
                    "events": ["incident.created"],
                    "ordering": "ordered",
                    "orderingKey": "incidentId",
                },
            )
            assert resp.status_code == 201, resp.text
            sub = resp.json()
            _publish(client)
            receiver.wait_for_sync(total // 3, path="/ordered", timeout=20)
            workers[0].kill9()
            started = time.monotonic()
            wait_statuses(client, sub["id"], {"succeeded": total}, timeout=40)
            assert time.monotonic() - started < 40
        requests = receiver.requests_for("/ordered")
    first: dict[str, tuple[str, int]] = {}  # webhook-id -> (lane, sequence) of its first attempt
    order: dict[str, list[int]] = defaultdict(list)
    ok: set[int] = set()
    for r in requests:
        sequence = int(r.headers["X-CauseFlow-Sequence"])
        if r.status == 200:
            ok.add(sequence)
        if r.headers["webhook-id"] in first:
            continue
        lane = r.json()["data"]["incidentId"]
        first[r.headers["webhook-id"]] = (lane, sequence)
        order[lane].append(sequence)
    assert sorted(s for _, s in first.values()) == list(range(1, total + 1))  # none skipped
    assert ok == set(range(1, total + 1))
    for lane in LANES:
        assert len(order[lane]) == PER_LANE
        assert order[lane] == sorted(order[lane]), (lane, order[lane])  # strictly increasing
        assert len(set(order[lane])) == PER_LANE

"""An ordered run that outlasts its start-by margin, across real `causeflow worker` processes on
PostgreSQL: a slow receiver makes each run stop part-way (the next delivery could no longer
start inside its lease), the rest goes back and the lane must go on at once, woken by the
run's end, not by a poll (the poll interval is far longer than the test). Every sequence
arrives and succeeds, first attempts in strictly increasing sequence, none twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment
from tests.support.receiver import ThreadedReceiver
from tests.webhook.test_ordered_pipelined import _first_attempts, _subscribe
from tests.webhook.test_worker_processes import ENV, api, publish, wait_statuses

pytestmark = pytest.mark.process

EVENTS = 40
PAUSE = 0.1  # each answer: a run of 128 outlasts start_by (0.8 s with these leases) after ~8


async def _slow(request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
    await asyncio.sleep(PAUSE)
    return web.Response(status=200)


class Slow:
    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        return await _slow(request, stopping)


@pytest.mark.parametrize("worker_count", [1, 2])
def test_a_run_cut_short_by_its_lease_wakes_its_lane(tmp_path: Path, worker_count: int) -> None:
    require_pg()
    env = {**ENV, "CAUSEFLOW_WEBHOOK_POLL_SECONDS": "60"}
    with (
        fresh_database() as url,
        Deployment(tmp_path, url, env=env) as deployment,
        ThreadedReceiver() as receiver,
    ):
        receiver.set_behavior("/o", Slow())
        creds = deployment.create_tenant("acme")
        server = deployment.add_server(CAUSEFLOW_RUN_WORKERS="false")
        for _ in range(worker_count):
            deployment.add_worker()
        with api(server.base_url, creds) as client:
            sub_id = _subscribe(client, receiver.url_for("/o"))
            publish(client, EVENTS)
            started = time.monotonic()
            # the sends alone take EVENTS * PAUSE; a lane that waits for a poll takes 60 s more
            wait_statuses(client, sub_id, {"succeeded": EVENTS}, timeout=30)
            assert time.monotonic() - started < 30
        order = _first_attempts(receiver.requests_for("/o"))
    assert order == list(range(1, EVENTS + 1))

"""Pipelined outcomes of an ordered run, across a real `causeflow worker` process on PostgreSQL.

A run sends its next delivery as soon as the one before succeeded and writes the outcomes
behind it, so a worker can die with deliveries answered 2xx whose success is not written yet.
The receiver holds one request (the worker is then between sends of a run, its predecessors
answered) and signals; the test kills the worker at that moment (kill -9: those outcomes are
lost, the deliveries are sent again, in order) or stops it (SIGTERM: they are written, none is
sent again). Either way every sequence arrives and succeeds, and the first attempts arrive in
strictly increasing sequence.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment
from tests.support.receiver import ReceivedRequest, ThreadedReceiver
from tests.webhook.test_worker_processes import ENV, api, publish, statuses, wait_statuses

pytestmark = pytest.mark.process

EVENTS = 300  # more than one claim's run (128)
HOLD_AT = 170  # the sequence whose first attempt the receiver holds


@dataclass
class HoldOne:
    """Answer 200 at once, except the first attempt of sequence `at`: signal the worker (its
    pid, once known) the moment it arrives, set `held` and keep the request until `release`
    (then 200, to a worker that may be gone)."""

    at: int
    signum: signal.Signals
    pid: int | None = None
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        if int(request.headers["X-CauseFlow-Sequence"]) == self.at and not self.held.is_set():
            # at once, from here: the outcomes of the run's last sends are still being gathered
            assert self.pid is not None
            os.kill(self.pid, self.signum)
            self.held.set()
            while not (self.release.is_set() or stopping.is_set()):
                await asyncio.sleep(0.01)
        return web.Response(status=200)


def _first_attempts(requests: list[ReceivedRequest]) -> list[int]:
    """The sequences in the order their first attempts arrived (by `webhook-id`)."""
    seen: set[str] = set()
    order: list[int] = []
    for r in requests:
        if r.headers["webhook-id"] not in seen:
            seen.add(r.headers["webhook-id"])
            order.append(int(r.headers["X-CauseFlow-Sequence"]))
    return order


def _subscribe(client: httpx.Client, url: str) -> str:
    resp = client.post(
        "/v1/webhook-subscriptions",
        json={"url": url, "events": ["incident.created"], "ordering": "ordered"},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


@pytest.mark.parametrize("stop", ["kill9", "sigterm"])
def test_a_worker_stopped_between_a_runs_sends_and_their_records(tmp_path: Path, stop: str) -> None:
    require_pg()
    hold = HoldOne(HOLD_AT, signal.SIGKILL if stop == "kill9" else signal.SIGTERM)
    with (
        fresh_database() as url,
        Deployment(tmp_path, url, env=ENV) as deployment,
        ThreadedReceiver() as receiver,
    ):
        receiver.set_behavior("/ordered", hold)
        creds = deployment.create_tenant("acme")
        server = deployment.add_server(CAUSEFLOW_RUN_WORKERS="false")
        with api(server.base_url, creds) as client:
            sub_id = _subscribe(client, receiver.url_for("/ordered"))
            publish(client, EVENTS)
            # a backlog: the worker's runs come full (the held one is in the second)
            worker = deployment.add_worker()
            hold.pid = worker.pid
            assert hold.held.wait(30), "the held sequence never arrived"
            if stop == "sigterm":
                worker.wait(20)  # its shutdown: the attempt held times out, outcomes written
            worker.kill9()  # (reaped; its group, if anything is left)
            answered = {
                int(r.headers["X-CauseFlow-Sequence"])
                for r in receiver.requests_for("/ordered")
                if r.status == 200
            }
            # everything before the held one was answered, one after another
            assert answered == set(range(1, HOLD_AT))
            recorded = statuses(client, sub_id)["succeeded"]
            if stop == "kill9":
                # the window: answered 2xx, the success not written when the worker died
                assert recorded < len(answered), (recorded, len(answered))
            else:
                assert recorded == len(answered)  # SIGTERM wrote every outcome it had
            hold.release.set()
            deployment.add_worker()
            wait_statuses(client, sub_id, {"succeeded": EVENTS}, timeout=60)
        requests = receiver.requests_for("/ordered")
    order = _first_attempts(requests)
    assert order == list(range(1, EVENTS + 1))  # none skipped, strictly increasing
    sent = [int(r.headers["X-CauseFlow-Sequence"]) for r in requests]
    again = {s for s in set(sent) if sent.count(s) > 1}
    if stop == "kill9":
        assert again, "nothing was sent again: the kill missed the unwritten outcomes"
        assert again <= set(range(recorded + 1, HOLD_AT + 1))  # only what was not written
    else:
        assert again <= {HOLD_AT}  # only the one in flight at SIGTERM

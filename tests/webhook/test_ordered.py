"""Ordered subscriptions in one process: a flaky receiver (random 500s) sees each lane's
deliveries in sequence order, the next one only after the previous one's last attempt, every
sequence once it has succeeded; a keyed subscription's stuck lane holds back no other lane."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from causeflow.webhook.dispatcher import start_dispatcher
from causeflow.webhook.engine import start_delivery
from tests.support.inproc import Service, make_settings, running_service
from tests.support.receiver import Fail, ReceivedRequest, Receiver
from tests.support.webhook import SUBS, create_sub, delivery_rows, error_paths
from tests.webhook.test_subscription_changes import patch, publish

pytestmark = pytest.mark.integration

STUCK = "inc_" + "0" * 26
FREE = "inc_" + "1" * 26
FAST = {
    "webhook_retry_schedule": "0.02s,0.02s,0.02s",
    "webhook_poll_seconds": 0.1,
    "webhook_timeout_seconds": 1.0,
    "webhook_lease_seconds": 2,
}


@dataclass
class Flaky:
    """Answer 500 to a share of the requests (seeded), 200 to the rest."""

    rate: float
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        return web.Response(status=500 if self.rng.random() < self.rate else 200)


@pytest.fixture
async def service(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    settings = make_settings(tmp_path, database_url, run_workers=False, **FAST)
    async with running_service(settings) as svc:
        yield svc


def sequence_of(request: ReceivedRequest) -> int:
    return int(request.headers["X-CauseFlow-Sequence"])


def assert_in_order(requests: list[ReceivedRequest]) -> None:
    """Each sequence's requests all come before the next sequence's first one."""
    seen = [sequence_of(r) for r in requests]
    assert seen == sorted(seen), seen


async def _deliver(service: Service, receiver: Receiver, count: int, path: str) -> None:
    """Run the dispatcher and an engine until `path` has had `count` 2xx answers."""
    stop_engine = await start_delivery(service.ctx)
    stop_dispatcher = await start_dispatcher(service.ctx)
    try:
        # a generous deadline: the retries of a flaky receiver run slower on a busy machine
        for _ in range(1200):
            ok = {r.headers["webhook-id"] for r in receiver.requests_for(path) if r.status == 200}
            if len(ok) >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"only {len(ok)} of {count} delivered")
    finally:
        await stop_dispatcher()
        await stop_engine()


async def test_a_flaky_receiver_gets_every_sequence_in_order(service: Service, tenant) -> None:
    async with Receiver() as receiver:
        receiver.set_behavior("/ordered", Flaky(0.3))
        ordered = await create_sub(
            service, tenant, url=receiver.url_for("/ordered"), ordering="ordered"
        )
        assert ordered["ordering"] == "ordered" and ordered["orderingKey"] is None
        for _ in range(40):
            await publish(service, tenant, "incident.created")
        await _deliver(service, receiver, 40, "/ordered")
        requests = receiver.requests_for("/ordered")
    assert_in_order(requests)
    ok = sorted({sequence_of(r) for r in requests if r.status == 200})
    assert ok == list(range(1, 41))
    assert len(requests) > 40  # the receiver did fail some attempts
    rows = await delivery_rows(service, tenant, subscription_id=ordered["id"])
    assert {r.status for r in rows} == {"succeeded"} and all(r.ordered for r in rows)


async def test_a_head_that_fails_for_good_lets_the_next_one_go(service: Service, tenant) -> None:
    async with Receiver() as receiver:
        receiver.set_behavior("/hook", Fail(500, times=4))  # the first delivery's 4 attempts
        sub = await create_sub(service, tenant, url=receiver.url_for("/hook"), ordering="ordered")
        for _ in range(3):
            await publish(service, tenant, "incident.created")
        await _deliver(service, receiver, 2, "/hook")
        requests = receiver.requests_for("/hook")
    assert [sequence_of(r) for r in requests] == [1, 1, 1, 1, 2, 3]
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    assert sorted((r.sequence, r.status) for r in rows) == [
        (1, "failed"),
        (2, "succeeded"),
        (3, "succeeded"),
    ]


async def test_one_stuck_key_does_not_hold_back_another(service: Service, tenant) -> None:
    async with Receiver() as receiver:
        receiver.set_behavior("/keyed", Fail(503))  # every attempt fails, until told otherwise
        sub = await create_sub(
            service,
            tenant,
            url=receiver.url_for("/keyed"),
            ordering="ordered",
            orderingKey="incidentId",
            headers={"X-Lane": "keyed"},
        )
        assert sub["orderingKey"] == "incidentId"
        stuck = await publish(service, tenant, "incident.created", incidentId=STUCK)
        rows, by_status = [], {}
        stop_engine = await start_delivery(service.ctx)
        stop_dispatcher = await start_dispatcher(service.ctx)
        try:
            await receiver.wait_for(1, path="/keyed")
            # the stuck lane's head is retrying; another key's events go through meanwhile
            receiver.set_behavior("/keyed", _ByIncident({STUCK}))
            for _ in range(3):
                await publish(service, tenant, "incident.created", incidentId=FREE)
            await publish(service, tenant, "incident.created", incidentId=STUCK)
            for _ in range(200):
                rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
                if sum(r.status == "succeeded" for r in rows) == 3:
                    by_status = {r.sequence: r.status for r in rows}
                    break
                await asyncio.sleep(0.05)
        finally:
            await stop_dispatcher()
            await stop_engine()
    lanes = defaultdict(list)
    for r in receiver.requests_for("/keyed"):
        lanes[r.json()["data"]["incidentId"]].append(sequence_of(r))
    assert lanes[FREE] == [2, 3, 4]
    # the other lane went through while the stuck head was still pending; its second event
    # waits behind it
    assert by_status[1] == "pending" and by_status[5] == "pending"
    assert set(lanes[STUCK]) == {1}
    assert lanes[STUCK] == sorted(lanes[STUCK])
    by_sequence = {r.sequence: r for r in rows}
    assert by_sequence[5].ordering_key == by_sequence[1].ordering_key
    assert by_sequence[1].event_id == stuck and by_sequence[1].ordering_key == f'"{STUCK}"'


@dataclass
class _ByIncident:
    """503 for the events of these incidents, 200 for the others."""

    failing: set[str]

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        import orjson

        incident = orjson.loads(await request.read())["data"]["incidentId"]
        if incident in self.failing:
            await asyncio.sleep(0.3)  # a slow failure: the head stays pending a while
            return web.Response(status=503)
        return web.Response(status=200)


async def test_ordering_is_validated_and_patched(service: Service, tenant) -> None:
    resp = await service.client.post(
        SUBS,
        headers=tenant.admin_headers,
        json={"url": "http://127.0.0.1:9/x", "events": ["*"], "ordering": "sorted"},
    )
    assert error_paths(resp) == ["ordering"]
    resp = await service.client.post(
        SUBS,
        headers=tenant.admin_headers,
        json={"url": "http://127.0.0.1:9/x", "events": ["*"], "orderingKey": "a..b"},
    )
    assert error_paths(resp) == ["orderingKey"]
    sub = await create_sub(service, tenant)
    assert sub["ordering"] == "unordered"
    changed = await patch(service, tenant, sub["id"], ordering="ordered", orderingKey="labels.team")
    assert (changed["ordering"], changed["orderingKey"]) == ("ordered", "labels.team")
    resp = await service.client.patch(
        f"{SUBS}/{sub['id']}", headers=tenant.admin_headers, json={"ordering": None}
    )
    assert error_paths(resp) == ["ordering"]


async def test_a_backlog_goes_out_in_order_through_runs(service: Service, tenant) -> None:
    """Several runs' worth waiting: full runs, their outcomes written behind the next send; a
    failure hands the rest of its run back behind it."""
    async with Receiver() as receiver:
        receiver.set_behavior("/backlog", _FailFirst({200, 333}))
        url = receiver.url_for("/backlog")
        sub = await create_sub(service, tenant, url=url, ordering="ordered")
        for _ in range(400):
            await publish(service, tenant, "incident.created")
        await _deliver(service, receiver, 400, "/backlog")
        requests = receiver.requests_for("/backlog")
    assert_in_order(requests)
    assert sorted({sequence_of(r) for r in requests if r.status == 200}) == list(range(1, 401))
    assert len(requests) == 402  # two attempts failed, each ending a run
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    assert {r.status for r in rows} == {"succeeded"} and len(rows) == 400


@dataclass
class _FailFirst:
    """500 to the first attempt of these sequences, 200 to everything else."""

    sequences: set[int]
    failed: set[int] = field(default_factory=set)

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        sequence = int(request.headers["X-CauseFlow-Sequence"])
        if sequence in self.sequences and sequence not in self.failed:
            self.failed.add(sequence)
            return web.Response(status=500)
        return web.Response(status=200)

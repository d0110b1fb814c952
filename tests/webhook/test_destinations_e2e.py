"""Broker destinations end to end, against real brokers: subscription API -> POST /v1/events ->
dispatcher -> delivery engine -> the broker, read back by a consumer of that broker.

Parametrized over every broker type the registry knows; a type whose module (or whose consumer
in tests/support/brokers.py) does not exist yet is skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yarl

from causeflow.webhook.destinations import registry
from causeflow.webhook.destinations.pool import PublisherPool
from causeflow.webhook.engine import DeliveryEngine
from causeflow_sdk.webhooks import verify, verify_signature
from tests.support.brokers import DESTINATIONS, PROCESS_KINDS, Destination, broker_process
from tests.support.inproc import Service, Tenant, make_settings, running_service
from tests.support.ports import free_port
from tests.support.tcp_proxy import TcpProxy
from tests.support.webhook import append, delivery_rows, dispatch_pending

from .delivery_support import FAST

pytestmark = pytest.mark.integration

SUBS = "/v1/webhook-subscriptions"
TYPES = [
    pytest.param(
        t,
        marks=pytest.mark.skipif(
            not registry.has_module(t) or t not in DESTINATIONS,
            reason=f"no {t} destination module or consumer yet",
        ),
    )
    for t in registry.BROKER_TYPES
]


@pytest.fixture
async def live(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    settings = make_settings(tmp_path, database_url, run_workers=True, **FAST)
    async with running_service(settings) as svc:
        yield svc


async def subscribe(svc: Service, tenant: Tenant, dest: Destination, **body: Any) -> dict[str, Any]:
    payload = {
        "type": dest.type,
        "url": dest.url,
        "options": dest.options,
        "events": ["incident.created"],
        **body,
    }
    resp = await svc.client.post(SUBS, headers=tenant.admin_headers, json=payload)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def publish(svc: Service, tenant: Tenant, **data: Any) -> dict[str, Any]:
    from causeflow_sdk.models import sample_data

    resp = await svc.client.post(
        "/v1/events",
        headers=tenant.admin_headers,
        json={"event": "incident.created", "data": {**sample_data("incident.created"), **data}},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def settled(svc: Service, tenant: Tenant, msg_id: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        resp = await svc.client.get(f"/v1/deliveries/{msg_id}", headers=tenant.admin_headers)
        assert resp.status_code == 200, resp.text
        if resp.json()["status"] != "pending":
            return resp.json()
        assert time.monotonic() < deadline, resp.json()
        await asyncio.sleep(0.05)


async def subscription_when(
    svc: Service, tenant: Tenant, sub_id: str, holds: Any, timeout: float = 15
) -> dict[str, Any]:
    """The subscription's view, read until `holds(view)` is true."""
    deadline = time.monotonic() + timeout
    while True:
        got = await svc.client.get(f"{SUBS}/{sub_id}", headers=tenant.admin_headers)
        view: dict[str, Any] = got.json()
        if holds(view):
            return view
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.05)


async def rows_after_failures(svc: Service, tenant: Tenant, sub_id: str, count: int = 3) -> Any:
    """The subscription's deliveries once its pending ones have `count` failed attempts."""
    deadline = time.monotonic() + 10
    while True:
        rows = await delivery_rows(svc, tenant, subscription_id=sub_id)
        if sum(r.attempts for r in rows if r.status == "pending") >= count:
            return rows
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.1)


def by_id(messages: list[Any]) -> dict[str, Any]:
    ids = [m.headers["webhook-id"] for m in messages]
    assert len(ids) == len(set(ids)), f"a delivery arrived twice: {ids}"
    return {m.headers["webhook-id"]: m for m in messages}


@pytest.mark.parametrize("type_", TYPES)
async def test_every_event_arrives_once_signed(live: Service, type_: str) -> None:
    tenant = await live.tenant("acme")
    async with DESTINATIONS[type_]() as dest:
        sub = await subscribe(live, tenant, dest, headers={"X-Team": "blue"})
        events = [await publish(live, tenant) for _ in range(5)]
        arrived = by_id(await dest.messages(5))
        assert len(arrived) == 5
        got = {verify(m.body, m.headers, sub["secret"]).id for m in arrived.values()}
        assert got == {e["id"] for e in events}
        for msg_id, message in arrived.items():
            assert message.headers["x-causeflow-event"] == "incident.created"
            assert message.headers["x-causeflow-subscription"] == sub["id"]
            assert message.headers["x-team"] == "blue"
            detail = await settled(live, tenant, msg_id)
            assert detail["status"] == "succeeded"
            [attempt] = detail["attemptLog"]
            assert attempt["statusCode"] is None and attempt["error"] is None
        stats = await live.client.get(f"{SUBS}/{sub['id']}/stats", headers=tenant.admin_headers)
        assert stats.json()["lastHour"]["succeeded"] == 5, stats.text
        assert stats.json()["lastHour"]["failed"] == 0


@pytest.mark.parametrize("type_", TYPES)
async def test_test_event_retry_and_rotation_go_through_the_broker(
    live: Service, type_: str
) -> None:
    tenant = await live.tenant("acme")
    async with DESTINATIONS[type_]() as dest:
        sub = await subscribe(live, tenant, dest)
        url = f"{SUBS}/{sub['id']}"
        resp = await live.client.post(f"{url}/test", headers=tenant.admin_headers, json={})
        assert resp.status_code == 202, resp.text
        [probe] = await dest.messages(1)
        verify_signature(probe.body, probe.headers, sub["secret"])
        assert orjson.loads(probe.body)["test"] is True
        assert (await settled(live, tenant, resp.json()["id"]))["status"] == "succeeded"

        event = await publish(live, tenant)
        second = (await dest.messages(2))[1]
        msg_id = second.headers["webhook-id"]
        await settled(live, tenant, msg_id)
        resp = await live.client.post(
            f"/v1/deliveries/{msg_id}/retry", headers=tenant.admin_headers
        )
        assert resp.status_code == 202, resp.text
        again = (await dest.messages(3))[2]
        assert again.headers["webhook-id"] == msg_id and again.body == second.body

        rotated = await live.client.post(
            f"{url}/rotate-secret", headers=tenant.admin_headers, json={}
        )
        assert rotated.status_code == 200, rotated.text
        await publish(live, tenant)
        fourth = (await dest.messages(4))[3]
        verify(fourth.body, fourth.headers, rotated.json()["secret"])
        verify(fourth.body, fourth.headers, sub["secret"])  # the overlap signs with both

        # replay: the event goes out again under a new delivery id
        since = event["timestamp"]
        resp = await live.client.post(
            f"{url}/replay", headers=tenant.admin_headers, json={"since": since}
        )
        assert resp.status_code == 202, resp.text
        assert resp.json()["scheduled"] == 2
        messages = await dest.messages(6)
        replayed = [m for m in messages[4:] if orjson.loads(m.body)["id"] == event["id"]]
        assert len(replayed) == 1
        assert replayed[0].headers["webhook-id"] != msg_id
        verify(replayed[0].body, replayed[0].headers, rotated.json()["secret"])


@pytest.mark.parametrize("type_", TYPES)
async def test_an_ordered_subscription_publishes_in_sequence(live: Service, type_: str) -> None:
    tenant = await live.tenant("acme")
    async with DESTINATIONS[type_]() as dest:
        await subscribe(live, tenant, dest, ordering="ordered")
        for _ in range(12):
            await publish(live, tenant)
        messages = await dest.messages(12)
        sequences = [int(m.headers["x-causeflow-sequence"]) for m in messages]
        assert sequences == list(range(1, 13))


@pytest.mark.parametrize("type_", TYPES)
async def test_a_disabled_broker_subscription_gets_nothing_until_enabled(
    live: Service, type_: str
) -> None:
    tenant = await live.tenant("acme")
    async with DESTINATIONS[type_]() as dest:
        sub = await subscribe(live, tenant, dest, enabled=False)
        await publish(live, tenant)
        resp = await live.client.patch(
            f"{SUBS}/{sub['id']}", headers=tenant.admin_headers, json={"enabled": True}
        )
        assert resp.status_code == 200, resp.text
        event = await publish(live, tenant)
        [message] = await dest.messages(1)
        assert verify(message.body, message.headers, sub["secret"]).id == event["id"]
        await asyncio.sleep(0.3)
        assert len(await dest.messages(1)) == 1


RECOVERY = {
    **FAST,
    "webhook_retry_schedule": "0.3s,0.5s,1s,1s,2s,2s,3s",
    "webhook_timeout_seconds": 2.0,
}


@pytest.mark.parametrize("type_", [p for p in TYPES if p.values[0] in PROCESS_KINDS])
async def test_a_broker_that_goes_down_is_retried_and_nothing_is_lost(
    tmp_path: Path, database_url: str, type_: str
) -> None:
    settings = make_settings(tmp_path, database_url, run_workers=True, **RECOVERY)
    with broker_process(type_, tmp_path / "broker") as broker:
        async with running_service(settings) as live:
            tenant = await live.tenant("acme")
            async with DESTINATIONS[type_](port=broker.port) as dest:
                sub = await subscribe(live, tenant, dest)
                first = [await publish(live, tenant) for _ in range(3)]
                await dest.messages(3)
                broker.stop()
                later = [await publish(live, tenant) for _ in range(3)]
                # wait for attempts that failed against the stopped broker
                rows = await rows_after_failures(live, tenant, sub["id"])
                failing = [r for r in rows if r.status == "pending"]
                assert all(r.last_error.startswith("broker_unavailable") for r in failing)
                broker.start()
                arrived = by_id(await dest.messages(6, timeout=20))
                ids = {verify(m.body, m.headers, sub["secret"]).id for m in arrived.values()}
                assert ids == {e["id"] for e in first + later}
                for row in failing:
                    assert (await settled(live, tenant, row.id))["status"] == "succeeded"


@pytest.mark.parametrize("type_", TYPES)
async def test_an_unreachable_broker_exhausts_then_recover_delivers_after_a_fix(
    live: Service, type_: str
) -> None:
    tenant = await live.tenant("acme")
    async with DESTINATIONS[type_]() as dest:
        dead = str(yarl.URL(dest.url).with_port(free_port()))
        sub = await subscribe(live, tenant, dest, url=dead)
        event = await publish(live, tenant)
        deadline = time.monotonic() + 10
        while not (rows := await delivery_rows(live, tenant, subscription_id=sub["id"])):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        [row] = rows
        detail = await settled(live, tenant, row.id)
        assert detail["status"] == "failed" and detail["attempts"] == 4
        assert all(a["error"].startswith("broker_unavailable") for a in detail["attemptLog"])
        assert detail["lastStatusCode"] is None
        # the exhaustion opened the failure window, as for a webhook
        got = await live.client.get(f"{SUBS}/{sub['id']}", headers=tenant.admin_headers)
        assert got.json()["firstFailureAt"] is not None
        # the subscription is fixed: the next attempt opens a publisher to the new URL
        resp = await live.client.patch(
            f"{SUBS}/{sub['id']}", headers=tenant.admin_headers, json={"url": dest.url}
        )
        assert resp.status_code == 200, resp.text
        resp = await live.client.post(
            f"{SUBS}/{sub['id']}/recover",
            headers=tenant.admin_headers,
            json={"since": event["timestamp"]},
        )
        assert resp.status_code == 202 and resp.json()["scheduled"] == 1, resp.text
        [message] = await dest.messages(1)
        assert message.headers["webhook-id"] == row.id
        assert verify(message.body, message.headers, sub["secret"]).id == event["id"]
        assert (await settled(live, tenant, row.id))["status"] == "succeeded"
        # and the broker's acknowledgement closed it again
        await subscription_when(live, tenant, sub["id"], lambda v: v["firstFailureAt"] is None, 5)


@pytest.mark.parametrize("type_", [p for p in TYPES if p.values[0] not in PROCESS_KINDS])
async def test_a_broker_cut_off_mid_stream_is_retried_and_nothing_is_lost(
    tmp_path: Path, database_url: str, type_: str
) -> None:
    """The shared RabbitMQ and Mosquitto stay up for the consumer: the service reaches them
    through a proxy that is cut (every connection closed, connects refused) and restored."""
    settings = make_settings(tmp_path, database_url, run_workers=True, **RECOVERY)
    async with running_service(settings) as live, DESTINATIONS[type_]() as dest:
        tenant = await live.tenant("acme")
        upstream = yarl.URL(dest.url)
        proxy = await TcpProxy(upstream.port or 0).start()
        try:
            sub = await subscribe(live, tenant, dest, url=str(upstream.with_port(proxy.port)))
            first = [await publish(live, tenant) for _ in range(3)]
            await dest.messages(3)
            await proxy.cut()
            later = [await publish(live, tenant) for _ in range(3)]
            rows = await rows_after_failures(live, tenant, sub["id"])
            failing = [r for r in rows if r.status == "pending" and r.attempts]
            assert failing and all((r.last_error or "").startswith("broker_") for r in failing)
            await proxy.restore()
            # at least once: a publish the broker took just as the link was cut, before its
            # acknowledgement came back, is sent again (same webhook-id), so count distinct ids
            wanted, ids = {e["id"] for e in first + later}, set()
            for count in range(6, 10):
                got = await dest.messages(count, timeout=20)
                ids = {verify(m.body, m.headers, sub["secret"]).id for m in got}
                if ids == wanted:
                    break
            assert ids == wanted
            for row in failing:
                assert (await settled(live, tenant, row.id))["status"] == "succeeded"
        finally:
            await proxy.close()


@pytest.mark.parametrize("type_", TYPES)
async def test_the_allow_list_is_applied_again_at_delivery(service: Service, type_: str) -> None:
    """The API admitted a loopback broker (its allow-list covers it); an engine whose allow-list
    does not cover it refuses to connect: the attempt is `ssrf_blocked` and nothing arrives."""
    tenant = await service.tenant("acme")
    async with DESTINATIONS[type_]() as dest:
        sub = await subscribe(service, tenant, dest)
        await append(service, tenant)
        assert await dispatch_pending(service.ctx) == 1
        engine = DeliveryEngine(service.ctx, grace_seconds=0.5)
        engine.pool = PublisherPool(allow=(), timeout=2)  # as CAUSEFLOW_WEBHOOK_ALLOW_CIDRS=""
        await engine.start()
        try:
            deadline = time.monotonic() + 10
            while True:
                [row] = await delivery_rows(service, tenant, subscription_id=sub["id"])
                if row.attempts:
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            await engine.stop()
        assert row.last_error == "ssrf_blocked"
        await asyncio.sleep(0.2)
        assert dest.seen == [] and await dest.read() == []


@pytest.mark.parametrize("type_", TYPES)
async def test_patterns_and_filters_choose_what_a_broker_gets(live: Service, type_: str) -> None:
    tenant = await live.tenant("acme")
    async with DESTINATIONS[type_]() as dest:
        sub = await subscribe(
            live, tenant, dest, events=["incident.*"], filter={"severity": "critical"}
        )
        critical = await publish(live, tenant, severity="critical")
        await publish(live, tenant, severity="low")
        [message] = await dest.messages(1)
        assert verify(message.body, message.headers, sub["secret"]).id == critical["id"]
        # the low-severity event made no delivery at all, so nothing more can arrive
        rows = await delivery_rows(live, tenant, subscription_id=sub["id"])
        assert [r.event_id for r in rows] == [critical["id"]]


@pytest.fixture
async def quick_disable(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    settings = make_settings(
        tmp_path, database_url, run_workers=True, webhook_disable_after_seconds=1, **FAST
    )
    async with running_service(settings) as svc:
        yield svc


@pytest.mark.parametrize("type_", TYPES)
async def test_a_broker_failing_past_the_window_is_disabled(
    quick_disable: Service, type_: str
) -> None:
    live = quick_disable
    tenant = await live.tenant("acme")
    async with DESTINATIONS[type_]() as dest:
        dead = str(yarl.URL(dest.url).with_port(free_port()))
        sub = await subscribe(live, tenant, dest, url=dead)
        for _ in range(2):  # the second exhaustion comes after the window has lasted 1 s
            await publish(live, tenant)
            await subscription_when(
                live, tenant, sub["id"], lambda v: v["firstFailureAt"] is not None
            )
            await asyncio.sleep(1.1)
        view = await subscription_when(live, tenant, sub["id"], lambda v: not v["enabled"])
        assert view["disabledReason"] == "repeated_failures"

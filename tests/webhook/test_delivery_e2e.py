"""End to end in one process: subscription API -> POST /v1/events -> dispatcher -> delivery
engine -> a real loopback receiver, then the delivery and its attempts through the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant, make_settings, running_service
from tests.support.receiver import Receiver, Status
from tests.support.webhook import delivery_rows

from .delivery_support import FAST, hex_verify, verify_standard

pytestmark = pytest.mark.integration

SUBS = "/v1/webhook-subscriptions"


@pytest.fixture
async def live(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    """The service with its delivery workers running (on PostgreSQL too)."""
    settings = make_settings(tmp_path, database_url, run_workers=True, **FAST)
    async with running_service(settings) as svc:
        yield svc


async def subscribe(svc: Service, tenant: Tenant, url: str, **body: Any) -> dict[str, Any]:
    payload = {"url": url, "events": ["incident.created"], **body}
    resp = await svc.client.post(SUBS, headers=tenant.admin_headers, json=payload)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def publish(svc: Service, tenant: Tenant, event_type: str = "incident.created") -> bytes:
    resp = await svc.client.post(
        "/v1/events",
        headers=tenant.admin_headers,
        json={"event": event_type, "data": sample_data(event_type)},
    )
    assert resp.status_code == 201, resp.text
    return resp.content


async def settled(svc: Service, tenant: Tenant, msg_id: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        resp = await svc.client.get(f"/v1/deliveries/{msg_id}", headers=tenant.admin_headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        if body["status"] != "pending":
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.03)


async def test_published_event_reaches_the_receiver_signed(live: Service) -> None:
    tenant = await live.tenant("acme")
    async with Receiver() as receiver:
        sub = await subscribe(live, tenant, receiver.url_for("/hook"))
        secret = sub["secret"]
        envelope = await publish(live, tenant)
        [req] = await receiver.wait_for(1)
        # the POST response, byte for byte (the answer ends with a newline, §8)
        assert req.body + b"\n" == envelope
        assert verify_standard(req, secret) == orjson.loads(envelope)
        assert hex_verify(req.text(), req.headers["X-CauseFlow-Signature"], secret)
        msg = req.headers["webhook-id"]
        detail = await settled(live, tenant, msg)
        assert detail["status"] == "succeeded"
        assert detail["attempts"] == 1
        assert detail["eventId"] == orjson.loads(envelope)["id"]
        [attempt] = detail["attemptLog"]
        assert attempt["statusCode"] == 200
        metrics = (await live.client.get("/metrics")).text
        assert 'causeflow_deliveries_total{outcome="succeeded"}' in metrics
        assert "causeflow_delivery_attempt_seconds_count" in metrics

        # one more attempt on request: same webhook-id, recorded, not rescheduled
        resp = await live.client.post(f"/v1/deliveries/{msg}/retry", headers=tenant.admin_headers)
        assert resp.status_code == 202, resp.text
        reqs = await receiver.wait_for(2)
        assert reqs[1].headers["webhook-id"] == msg
        assert reqs[1].body + b"\n" == envelope
        deadline = time.monotonic() + 5
        while (detail := await settled(live, tenant, msg))["attempts"] < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.03)
        assert detail["status"] == "succeeded"

        # a test delivery: sent through the same pipeline, never in the log
        resp = await live.client.post(
            f"{SUBS}/{sub['id']}/test", headers=tenant.admin_headers, json={}
        )
        assert resp.status_code == 202, resp.text
        reqs = await receiver.wait_for(3)
        probe = orjson.loads(reqs[2].body)
        assert probe["test"] is True
        assert verify_standard(reqs[2], secret)["test"] is True
        log = await live.client.get(
            "/v1/events?event=incident.created", headers=tenant.admin_headers
        )
        assert [e["id"] for e in log.json()["items"]] == [orjson.loads(envelope)["id"]]
        assert probe["id"] != orjson.loads(envelope)["id"]


async def test_a_410_disables_and_the_operational_event_reaches_other_subscriptions(
    live: Service,
) -> None:
    tenant = await live.tenant("acme")
    async with Receiver() as receiver:
        receiver.set_behavior("/gone", Status(410))
        gone = await subscribe(live, tenant, receiver.url_for("/gone"), events=["*"])
        watcher = await subscribe(
            live, tenant, receiver.url_for("/ops"), events=["webhook.subscription_disabled"]
        )
        await publish(live, tenant)
        [notice] = await receiver.wait_for(1, path="/ops")
        body = orjson.loads(notice.body)
        assert body["event"] == "webhook.subscription_disabled"
        assert body["data"] == {
            "subscriptionId": gone["id"],
            "url": receiver.url_for("/gone"),
            "reason": "endpoint_gone",
        }
        assert verify_standard(notice, watcher["secret"])["id"] == body["id"]
        resp = await live.client.get(f"{SUBS}/{gone['id']}", headers=tenant.admin_headers)
        assert resp.json()["enabled"] is False
        # the subscription it is about never receives it (it got only the incident): once the
        # notice's deliveries (made together) have all ended, none of them went to it
        async with asyncio.timeout(30):
            while not (rows := await delivery_rows(live, tenant, event_id=body["id"])) or any(
                r.status == "pending" for r in rows
            ):
                await asyncio.sleep(0.02)
        assert all(r.attempts == 0 for r in rows if r.subscription_id == gone["id"])
        assert len(receiver.requests_for("/gone")) == 1

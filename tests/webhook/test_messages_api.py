"""The pull API (`GET /v1/webhook-subscriptions/{id}/messages`): a receiver that saw a gap in
X-CauseFlow-Sequence fetches exactly the matches it missed, with the envelopes it would have
been sent and the state of their deliveries."""

from __future__ import annotations

from typing import Any

import pytest

from causeflow.webhook.engine import start_delivery
from tests.support.inproc import Service, Tenant
from tests.support.receiver import Receiver
from tests.support.webhook import SUBS, create_sub, dispatch_pending, error_paths
from tests.webhook.test_subscription_changes import publish

pytestmark = pytest.mark.integration


async def _messages(service: Service, tenant: Tenant, sub_id: str, **params: Any) -> Any:
    resp = await service.client.get(
        f"{SUBS}/{sub_id}/messages", params=params, headers=tenant.admin_headers
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_a_receiver_fetches_exactly_what_it_missed(service: Service, tenant: Tenant):
    async with Receiver() as receiver:
        sub = await create_sub(
            service, tenant, url=receiver.url_for("/hook"), filter={"severity": "critical"}
        )
        for severity in ("critical", "low", "critical", "critical", "low", "critical", "critical"):
            await publish(service, tenant, "incident.created", severity=severity)
        await dispatch_pending(service.ctx)
        stop = await start_delivery(service.ctx)
        try:
            requests = await receiver.wait_for(5)
        finally:
            await stop()
    by_sequence = {int(r.headers["X-CauseFlow-Sequence"]): r.json() for r in requests}
    assert sorted(by_sequence) == [1, 2, 3, 4, 5]
    # the receiver lost 2 and 4 (say its process crashed): it asks after the last contiguous
    seen = {1, 3, 5}
    fetched = (await _messages(service, tenant, sub["id"], afterSequence=1, limit=1))["items"]
    assert [m["sequence"] for m in fetched] == [2]
    page = await _messages(service, tenant, sub["id"], afterSequence=3)
    missed = [m for m in fetched + page["items"] if m["sequence"] not in seen]
    assert [m["sequence"] for m in missed] == [2, 4]
    for m in missed:
        assert m["event"] == by_sequence[m["sequence"]]  # the envelope as it was delivered
        assert m["status"] == "succeeded" and m["attempts"] == 1 and m["lastStatusCode"] == 200
        assert m["eventId"] == m["event"]["id"] and m["eventType"] == "incident.created"
        assert m["deliveryId"].startswith("msg_")


async def test_pages_follow_the_sequence(service: Service, tenant: Tenant):
    sub = await create_sub(service, tenant, events=["incident.created"])
    other = await create_sub(service, tenant)
    ids = [await publish(service, tenant, "incident.created") for _ in range(5)]
    await dispatch_pending(service.ctx)
    items, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = await _messages(service, tenant, sub["id"], **params)
        assert body["count"] == len(body["items"]) <= 2
        items += body["items"]
        cursor = body["cursor"]
        if cursor is None:
            break
    assert [m["sequence"] for m in items] == [1, 2, 3, 4, 5]
    assert [m["eventId"] for m in items] == ids
    assert {m["status"] for m in items} == {"pending"}
    assert (await _messages(service, tenant, sub["id"], afterSequence=5))["items"] == []
    # another subscription numbers its own matches
    theirs = (await _messages(service, tenant, other["id"]))["items"]
    assert [m["sequence"] for m in theirs] == [1, 2, 3, 4, 5]


async def test_bad_requests_and_other_tenants(service: Service, tenant: Tenant, other_tenant):
    sub = await create_sub(service, tenant)
    url = f"{SUBS}/{sub['id']}/messages"
    resp = await service.client.get(url, params={"afterSequence": -1}, headers=tenant.admin_headers)
    assert resp.status_code == 422
    resp = await service.client.get(url, params={"cursor": "nope"}, headers=tenant.admin_headers)
    assert error_paths(resp) == ["cursor"]
    resp = await service.client.get(url, headers=other_tenant.admin_headers)
    assert resp.status_code == 404 and resp.json()["error"] == "subscription_not_found"

"""The client library against a real `causeflow serve`: every resource group, round trips."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import trustme

from causeflow_sdk import UNSET, AsyncClient, CauseFlowAPIError, Client, verify
from causeflow_sdk.models import Envelope, sample_data
from tests.support.receiver import Fail, Receiver
from tests.support.serve import Live

pytestmark = pytest.mark.process


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as rec:
        yield rec


async def test_subscription_round_trip(client: AsyncClient, receiver: Receiver) -> None:
    created = await client.subscriptions.create(
        receiver.url_for("/hooks"),
        ["incident.created", "incident.status_changed"],
        description="local receiver",
        headers={"Authorization": "Bearer receiver-token"},
        filter={"severity": ["critical", "high"]},
    )
    assert created.secret.startswith("whsec_") and created.id.startswith("sub_")
    got = await client.subscriptions.get(created.id)
    assert got.url == receiver.url_for("/hooks") and got.description == "local receiver"
    assert "secret" not in got.model_dump()
    assert created.id in [s.id async for s in client.subscriptions.iterate(limit=1)]

    updated = await client.subscriptions.update(created.id, description=None, enabled=False)
    assert updated.description is None and updated.enabled is False
    assert updated.events == ["incident.created", "incident.status_changed"]
    updated = await client.subscriptions.update(created.id, enabled=True, events=UNSET)
    assert updated.enabled is True and updated.filter == {"severity": ["critical", "high"]}

    rotated = await client.subscriptions.rotate_secret(created.id, "a-secret-the-receiver-knows")
    assert rotated.secret == "a-secret-the-receiver-knows"
    assert rotated.previousSecretExpiresAt is not None

    delivery = await client.subscriptions.test(created.id, "remediation.proposed")
    assert delivery.test and delivery.eventType == "remediation.proposed"
    [request] = await receiver.wait_for(1, path="/hooks")
    assert request.headers["Authorization"] == "Bearer receiver-token"
    # Either secret of the rotation verifies; the envelope says it is a test.
    for secret in (rotated.secret, created.secret):
        event = verify(request.body, request.headers, secret)
        assert event.event == "remediation.proposed" and event.test is True

    detail = await _settled(client, delivery.id)
    assert detail.status == "succeeded" and detail.attemptLog[0].statusCode == 200
    page = await client.subscriptions.deliveries(created.id, status="succeeded")
    assert [d.id for d in page.items] == [delivery.id]

    since = datetime.now(UTC) - timedelta(minutes=5)
    assert await client.subscriptions.recover(created.id, since) == 0
    assert isinstance(await client.subscriptions.replay(created.id, since), int)

    await client.subscriptions.delete(created.id)
    with pytest.raises(CauseFlowAPIError) as caught:
        await client.subscriptions.get(created.id)
    assert caught.value.status == 404


async def test_a_real_event_is_delivered_and_a_delivery_retried(
    client: AsyncClient, receiver: Receiver
) -> None:
    receiver.set_behavior("/flaky", Fail(500))
    sub = await client.subscriptions.create(receiver.url_for("/flaky"), ["incident.created"])
    incident = await client.incidents.create("checkout is slow", "high", service="checkout")
    first = await receiver.wait_for(1, path="/flaky")
    event = verify(first[0].body, first[0].headers, sub.secret)
    assert event.event == "incident.created" and event.data["incidentId"] == incident.id

    page = await client.subscriptions.deliveries(sub.id, event="incident.created")
    [delivery] = page.items
    # The test schedule ("200ms") gives up after a second attempt; then the receiver recovers.
    failed = await _settled(client, delivery.id, want="failed")
    assert failed.status == "failed" and len(failed.attemptLog) == 2
    receiver.set_behavior("/flaky", Fail(500, times=0))
    retried = await client.deliveries.retry(delivery.id)
    assert retried.id == delivery.id
    detail = await _settled(client, delivery.id, want="succeeded")
    assert detail.attemptLog[-1].statusCode == 200
    requests = receiver.requests_for("/flaky")
    assert {r.headers["webhook-id"] for r in requests} == {delivery.id}
    await client.subscriptions.delete(sub.id)


async def test_incidents_round_trip(client: AsyncClient) -> None:
    created = await client.incidents.create(
        "disk full on db-1", "critical", description="95% used", environment="prod"
    )
    assert created.status == "open" and created.source == "manual"
    moved = await client.incidents.update(created.id, status="investigating")
    assert moved.status == "investigating"
    detail = await client.incidents.get(created.id)
    assert [e.event for e in detail.events] == ["incident.created", "incident.status_changed"]
    assert all(isinstance(e, Envelope) for e in detail.events)
    listed = [i.id async for i in client.incidents.iterate(severity="critical", limit=1)]
    assert created.id in listed
    page = await client.incidents.list(status=["investigating"], limit=100)
    assert created.id in [i.id for i in page.items]
    with pytest.raises(CauseFlowAPIError) as caught:
        await client.incidents.update(created.id, status="open")
    assert caught.value.status == 409 and caught.value.code == "invalid_transition"


async def test_events_publish_list_and_pagination(client: AsyncClient) -> None:
    start = await client.events.publish("user.created", sample_data("user.created"), test=True)
    assert start.test is True
    kind = "knowledge.pattern_extracted"
    published = [(await client.events.publish(kind, sample_data(kind))).id for _ in range(5)]
    # Filtered by type: the delivery engine may append operational events meanwhile.
    page = await client.events.list(event=kind, after=start.id, limit=2)
    assert len(page.items) == 2 and page.cursor is not None and page.count == 2
    walked = [e.id async for e in client.events.iterate(event=kind, after=start.id, limit=2)]
    assert walked == published
    only = [
        e.id
        async for e in client.events.iterate(
            event=["user.created"], since=datetime.now(UTC) - timedelta(minutes=5)
        )
    ]
    assert start.id in only and not set(published) & set(only)


async def test_api_errors_carry_code_message_and_details(client: AsyncClient, live: Live) -> None:
    with pytest.raises(CauseFlowAPIError) as caught:
        await client.events.publish("incident.created", {"incidentId": "nope"})
    error = caught.value
    assert error.status == 422 and error.code == "validation_error"
    assert any(e["path"].startswith("data.") for e in error.details["errors"])
    async with AsyncClient(live.url, api_key="cflo_" + "0" * 64) as stranger:
        with pytest.raises(CauseFlowAPIError) as caught:
            await stranger.incidents.list()
    assert caught.value.status == 401
    with pytest.raises(CauseFlowAPIError) as caught:
        await client.events.list(after="evt_01M86BJ2JKYYK596NGYA1DQ91K")
    assert caught.value.status == 410 and caught.value.code == "cursor_expired"


def test_the_sync_client(live: Live) -> None:
    with Client(live.url, api_key=live.api_key) as cf:
        incident = cf.incidents.create("sync client", "low")
        assert cf.incidents.get(incident.id).title == "sync client"
        events = list(cf.events.iterate(incident_id=incident.id))
        assert [e.event for e in events] == ["incident.created"]
        with pytest.raises(CauseFlowAPIError):
            cf.incidents.get("inc_01M86BHTRK6CQ643DZVMXXQKFB")
        ticket = cf.create_stream_ticket()
        assert ticket["ticket"]


async def _settled(client: AsyncClient, delivery_id: str, want: str | None = None):
    deadline = time.monotonic() + 10
    while True:
        detail = await client.deliveries.get(delivery_id)
        done = detail.status == want if want else detail.status != "pending"
        if done or time.monotonic() > deadline:
            return detail
        await asyncio.sleep(0.05)


async def test_subscription_egress_fields_are_write_only(client: AsyncClient) -> None:
    leaf = trustme.CA().issue_cert("sdk-client")
    cert = b"".join(blob.bytes() for blob in leaf.cert_chain_pems).decode()
    key = leaf.private_key_pem.bytes().decode()
    created = await client.subscriptions.create(
        "http://127.0.0.1:9/hook",
        ["incident.created"],
        tls={"clientCertificate": cert, "clientKey": key},
        auth={"type": "bearer", "token": "sdk-bearer-token"},
    )
    assert created.tls is not None and len(created.tls["fingerprintSha256"]) == 64
    assert created.auth == {"type": "bearer", "tokenUrl": None, "clientId": None}
    assert "sdk-bearer-token" not in created.model_dump_json()
    updated = await client.subscriptions.update(created.id, tls=None)
    assert updated.tls is None and updated.auth == created.auth
    updated = await client.subscriptions.update(created.id, auth=None)
    assert updated.auth is None


async def test_a_broker_subscription_round_trip(client: AsyncClient) -> None:
    created = await client.subscriptions.create(
        "redis://app:hunter2-hunter2@127.0.0.1:6379/0",
        ["incident.created"],
        type="redis",
        options={"stream": "sdk-orders"},
    )
    assert created.type == "redis" and created.options == {"stream": "sdk-orders", "maxLen": None}
    assert created.url == "redis://app:****@127.0.0.1:6379/0"
    updated = await client.subscriptions.update(
        created.id, options={"stream": "sdk-orders", "maxLen": 10}
    )
    assert updated.options == {"stream": "sdk-orders", "maxLen": 10}
    assert "hunter2" not in (await client.subscriptions.get(created.id)).model_dump_json()
    with pytest.raises(CauseFlowAPIError) as refused:
        await client.subscriptions.update(created.id, type="nats")
    assert refused.value.status == 422

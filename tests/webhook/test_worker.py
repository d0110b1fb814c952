"""The delivery engine against real loopback receivers: signing, retries, Retry-After, 410,
exhaustion and auto-disable, timeouts, manual retries, disabled or deleted subscriptions, and
test deliveries. Delivery rows are written straight to the tables (no dispatcher)."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import trustme
from aiohttp import web

from causeflow.context import AppContext
from causeflow_sdk.models import validate_data
from tests.support.clock import FrozenClock
from tests.support.receiver import Fail, Hang, Receiver, Sequence, Status, TooMany

from .delivery_support import (
    SECRET,
    add_deliveries,
    add_event,
    add_subscription,
    attempts_of,
    bare_context,
    hex_verify,
    log_events,
    running_engine,
    set_subscription,
    subscription,
    verify_standard,
    wait_attempts,
    wait_until_settled,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[AppContext]:
    async with bare_context(tmp_path) as c:
        yield c


async def test_delivers_the_envelope_signed(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> None:
    async with bare_context(tmp_path, database_url) as ctx:
        sub = await add_subscription(
            ctx,
            receiver.url_for("/hook"),
            previous_secret="your-signing-secret",
            headers={"Authorization": "Bearer tok", "X-CauseFlow-Signature": "forged"},
        )
        event = await add_event(ctx)
        [msg] = await add_deliveries(ctx, sub, event)
        async with running_engine(ctx):
            [req] = await receiver.wait_for(1)
            [row] = await wait_until_settled(ctx, [msg])
        # the exact bytes of the stored envelope
        assert req.body == event.envelope.encode()
        assert req.method == "POST"
        h = req.headers
        assert h["Content-Type"] == "application/json"
        assert h["User-Agent"].startswith("CauseFlow-Webhooks/")
        assert h["X-CauseFlow-Event"] == "incident.created"
        assert h["X-CauseFlow-Delivery"] == msg
        assert h["webhook-id"] == msg
        assert abs(int(h["webhook-timestamp"]) - time.time()) < 5
        assert h["Authorization"] == "Bearer tok"
        # the current secret signs; a subscription header cannot replace ours
        assert hex_verify(req.text(), h["X-CauseFlow-Signature"], SECRET)
        assert verify_standard(req, SECRET)["id"] == event.id
        # during a rotation overlap both secrets' signatures are present and verify
        assert len(h["webhook-signature"].split()) == 2
        assert verify_standard(req, "your-signing-secret")["id"] == event.id
        assert row.status == "succeeded"
        assert row.attempts == 1
        assert row.lease_owner is None and row.lease_until is None
        [att] = await attempts_of(ctx, msg)
        assert att.id.startswith("att_")
        assert att.status_code == 200
        assert att.error is None
        assert att.latency_ms is not None and att.latency_ms >= 0


async def test_fails_twice_then_succeeds_with_the_same_webhook_id(
    ctx: AppContext, receiver: Receiver
) -> None:
    receiver.set_behavior("/hook", Fail(500, times=2))
    sub = await add_subscription(ctx, receiver.url_for("/hook"))
    [msg] = await add_deliveries(ctx, sub, await add_event(ctx))
    async with running_engine(ctx):
        reqs = await receiver.wait_for(3)
        [row] = await wait_until_settled(ctx, [msg])
    assert [r.headers["webhook-id"] for r in reqs] == [msg] * 3
    # the schedule's 0.2 s steps, with at most 20 % jitter below
    gaps = [b.received_at - a.received_at for a, b in zip(reqs, reqs[1:], strict=False)]
    assert all(gap >= 0.15 for gap in gaps), gaps
    assert row.status == "succeeded"
    assert row.attempts == 3
    atts = await attempts_of(ctx, msg)
    assert [a.status_code for a in atts] == [500, 500, 200]
    assert atts[0].response_body == "failing on purpose"
    assert atts[0].error == "HTTP 500 Internal Server Error"


async def test_retry_after_is_honoured_up_to_the_next_step(
    tmp_path: Path, receiver: Receiver
) -> None:
    # Step 1 is 0.2 s, step 2 30 s: Retry-After 1 waits max(0.2, min(1, 30)) = 1 s. Not before
    # (the gap), and not the next step either: the retry arrives long before 30 s.
    async with bare_context(tmp_path, webhook_retry_schedule="0.2s,30s") as ctx:
        receiver.set_behavior("/hook", Sequence([TooMany("1"), Status(200)]))
        sub = await add_subscription(ctx, receiver.url_for("/hook"))
        [msg] = await add_deliveries(ctx, sub, await add_event(ctx))
        async with running_engine(ctx):
            first, second = await receiver.wait_for(2, timeout=15)
            [row] = await wait_until_settled(ctx, [msg])
    gap = second.received_at - first.received_at
    assert gap >= 0.95, gap
    assert row.status == "succeeded"
    assert [a.status_code for a in await attempts_of(ctx, msg)] == [429, 200]


async def test_gone_disables_the_subscription_at_once(ctx: AppContext, receiver: Receiver) -> None:
    receiver.set_behavior("/gone", Status(410))
    sub = await add_subscription(ctx, receiver.url_for("/gone"))
    event = await add_event(ctx)
    [msg] = await add_deliveries(ctx, sub, event)
    async with running_engine(ctx):
        [row] = await wait_until_settled(ctx, [msg])
        assert len(receiver.requests) == 1  # no retry
        assert row.status == "failed"
        assert row.last_status_code == 410
        s = await subscription(ctx, sub)
        assert not s.enabled
        assert s.disabled_reason == "endpoint_gone"
        [ev] = await log_events(ctx, "webhook.subscription_disabled")
        envelope = orjson.loads(ev.envelope)
        assert envelope["data"] == {
            "subscriptionId": sub,
            "url": receiver.url_for("/gone"),
            "reason": "endpoint_gone",
        }
        validate_data("webhook.subscription_disabled", envelope["data"])
        # later deliveries of the disabled subscription fail without a request
        [later] = await add_deliveries(ctx, sub, event)
        [row] = await wait_until_settled(ctx, [later])
    assert row.status == "failed"
    assert row.last_error == "endpoint_disabled"
    assert len(receiver.requests) == 1
    assert await attempts_of(ctx, later) == []
    assert len(await log_events(ctx, "webhook.subscription_disabled")) == 1


async def test_exhaustion_fails_emits_and_starts_the_failure_window(
    ctx: AppContext, receiver: Receiver
) -> None:
    receiver.set_behavior("/down", Status(503, body=b"maintenance"))
    sub = await add_subscription(ctx, receiver.url_for("/down"))
    event = await add_event(ctx)
    [msg] = await add_deliveries(ctx, sub, event)
    before = ctx.clock.now_ms()
    async with running_engine(ctx):
        [row] = await wait_until_settled(ctx, [msg])
    assert len(receiver.requests) == 4  # the first attempt and one per step of three
    assert row.status == "failed"
    assert row.attempts == 4
    assert row.last_error == "HTTP 503 Service Unavailable"
    [ev] = await log_events(ctx, "webhook.delivery_exhausted")
    data = orjson.loads(ev.envelope)["data"]
    assert data == {
        "subscriptionId": sub,
        "deliveryId": msg,
        "eventId": event.id,
        "attempts": 4,
        "lastError": "HTTP 503 Service Unavailable",
    }
    validate_data("webhook.delivery_exhausted", data)
    s = await subscription(ctx, sub)
    assert s.enabled  # one exhaustion only opens the window
    assert s.first_failure_at is not None and s.first_failure_at >= before


async def test_auto_disable_after_the_window_and_a_2xx_clears_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    clock = FrozenClock()
    # One retry with no wait, so a frozen clock never has to move for retries to come due.
    async with bare_context(tmp_path, clock=clock, webhook_retry_schedule="0s") as ctx:
        receiver.set_behavior("/down", Status(500))
        down = await add_subscription(ctx, receiver.url_for("/down"))
        up = await add_subscription(ctx, receiver.url_for("/up"))
        event = await add_event(ctx)
        async with running_engine(ctx):
            # first exhaustion: the window opens at this instant
            await wait_until_settled(ctx, await add_deliveries(ctx, down, event))
            opened = clock.now_ms()
            assert (await subscription(ctx, down)).first_failure_at == opened
            # an exhaustion inside the window (default: 5 days) changes nothing
            clock.advance(5 * 86400 - 1)
            await wait_until_settled(ctx, await add_deliveries(ctx, down, event))
            s = await subscription(ctx, down)
            assert s.enabled and s.first_failure_at == opened
            # one at least 5 days after it disables
            clock.advance(1)
            await wait_until_settled(ctx, await add_deliveries(ctx, down, event))
            s = await subscription(ctx, down)
            assert not s.enabled
            assert s.disabled_reason == "repeated_failures"
            [ev] = await log_events(ctx, "webhook.subscription_disabled")
            assert orjson.loads(ev.envelope)["data"]["reason"] == "repeated_failures"
            assert len(await log_events(ctx, "webhook.delivery_exhausted")) == 3
            # a 2xx clears firstFailureAt
            await set_subscription(ctx, up, first_failure_at=opened)
            await wait_until_settled(ctx, await add_deliveries(ctx, up, event))
        assert (await subscription(ctx, up)).first_failure_at is None


async def test_a_hanging_receiver_times_out(tmp_path: Path, receiver: Receiver) -> None:
    async with bare_context(
        tmp_path, webhook_timeout_seconds=0.4, webhook_retry_schedule="30s"
    ) as ctx:
        receiver.set_behavior("/hang", Hang())
        sub = await add_subscription(ctx, receiver.url_for("/hang"))
        [msg] = await add_deliveries(ctx, sub, await add_event(ctx))
        async with running_engine(ctx):
            await receiver.wait_for(1)
            row = await wait_attempts(ctx, msg)
        assert row.status == "pending"
        assert row.attempts == 1
        assert row.last_error == "timeout"
        assert row.next_attempt_at >= ctx.clock.now_ms() + 20_000  # 30 s minus jitter
        [att] = await attempts_of(ctx, msg)
        assert att.error == "timeout"
        assert att.status_code is None
        assert 350 <= att.latency_ms < 2000


async def test_a_manual_retry_is_one_attempt(ctx: AppContext, receiver: Receiver) -> None:
    receiver.set_behavior("/hook", Sequence([Status(500), Status(204)]))
    sub = await add_subscription(ctx, receiver.url_for("/hook"))
    event = await add_event(ctx)
    # as the retry endpoint leaves an exhausted delivery: pending, manual, 4 attempts made
    [msg] = await add_deliveries(ctx, sub, event, manual=True, attempts_made=4)
    async with running_engine(ctx):
        [row] = await wait_until_settled(ctx, [msg])
        assert row.status == "failed"  # not rescheduled
        assert row.attempts == 5
        assert not row.manual
        assert len(receiver.requests) == 1
        assert await log_events(ctx, "webhook.delivery_exhausted") == []
        [again] = await add_deliveries(ctx, sub, event, manual=True, attempts_made=5)
        [row] = await wait_until_settled(ctx, [again])
    assert row.status == "succeeded"
    assert len(receiver.requests) == 2


async def test_deleted_and_disabled_subscriptions(ctx: AppContext, receiver: Receiver) -> None:
    event = await add_event(ctx)
    off = await add_subscription(ctx, receiver.url_for("/off"), enabled=False)
    [to_off] = await add_deliveries(ctx, off, event)
    [to_gone] = await add_deliveries(ctx, "sub_01JD0000000000000000000000", event)
    async with running_engine(ctx):
        rows = await wait_until_settled(ctx, [to_off, to_gone])
    assert [(r.status, r.last_error, r.attempts) for r in rows] == [
        ("failed", "endpoint_disabled", 0),
        ("cancelled", "subscription_deleted", 0),
    ]
    assert receiver.requests == []


async def test_test_deliveries_send_their_payload_and_leave_no_trace(
    ctx: AppContext, receiver: Receiver
) -> None:
    receiver.set_behavior("/probe", Status(500))
    sub = await add_subscription(ctx, receiver.url_for("/probe"))
    payload = '{"id":"evt_x","event":"incident.created","test":true,"data":{}}'
    [msg] = await add_deliveries(ctx, sub, None, payload=payload)
    async with running_engine(ctx):
        [row] = await wait_until_settled(ctx, [msg])
    assert {r.body for r in receiver.requests} == {payload.encode()}
    assert len(receiver.requests) == 4  # retried like any delivery
    assert row.status == "failed"
    # no operational event in the log, and the subscription is untouched
    assert await log_events(ctx, "webhook.delivery_exhausted") == []
    s = await subscription(ctx, sub)
    assert s.enabled and s.first_failure_at is None


async def test_https_with_the_configured_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    bodies: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
    await site.start()
    port = runner.addresses[0][1]
    try:
        for trusted in (True, False):
            extra = {"webhook_ca_file": str(ca_file)} if trusted else {}
            async with bare_context(
                tmp_path / str(trusted), webhook_allow_http=False, **extra
            ) as ctx:
                sub = await add_subscription(ctx, f"https://127.0.0.1:{port}/hook")
                event = await add_event(ctx)
                [msg] = await add_deliveries(ctx, sub, event)
                async with running_engine(ctx):
                    if trusted:
                        [row] = await wait_until_settled(ctx, [msg])
                        assert row.status == "succeeded"
                        assert bodies == [event.envelope.encode()]
                    else:
                        # the system trust store does not know this CA
                        row = await wait_attempts(ctx, msg)
                        assert row.last_error.startswith("tls_error")
    finally:
        await runner.cleanup()

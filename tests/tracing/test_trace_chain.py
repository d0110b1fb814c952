"""One trace from an inbound alert to the receiver of its webhook, and from a publish to the
stream frame written for it: the spans' parents and links, and the `traceparent` a receiver
gets (a real loopback receiver), with tracing on and off."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import select

from causeflow.event.tables import events
from causeflow.tracing import spans
from causeflow_sdk.models import sample_data
from tests.stream.live import LiveService, live_service, next_event, opened
from tests.support.inbound import alert, post
from tests.support.inproc import Service, Tenant, make_settings, running_service
from tests.support.receiver import Fail, Receiver
from tests.webhook.delivery_support import FAST

pytestmark = pytest.mark.integration

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
async def live(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    settings = make_settings(tmp_path, database_url, run_workers=True, **FAST)
    async with running_service(settings) as svc:
        yield svc


async def subscribe(svc: Service, tenant: Tenant, url: str) -> None:
    body = {"url": url, "events": ["incident.created"]}
    resp = await svc.client.post(
        "/v1/webhook-subscriptions", headers=tenant.admin_headers, json=body
    )
    assert resp.status_code == 201, resp.text


async def ended(exporter: InMemorySpanExporter, name: str, count: int = 1) -> list[ReadableSpan]:
    """The finished spans of that name, once there are `count` of them."""
    deadline = time.monotonic() + 10
    while True:
        found = [s for s in exporter.get_finished_spans() if s.name == name]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, [s.name for s in exporter.get_finished_spans()]
        await asyncio.sleep(0.02)


def only(found: Sequence[ReadableSpan]) -> ReadableSpan:
    assert len(found) == 1, [s.name for s in found]
    return found[0]


def appended_of(found: Sequence[ReadableSpan], event_type: str) -> list[ReadableSpan]:
    return [s for s in found if s.attributes["causeflow.event.type"] == event_type]


def hexes(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.get_span_context()
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def parent_of(span: ReadableSpan) -> str:
    assert span.parent is not None, span.name
    return f"{span.parent.span_id:016x}"


async def stored_traceparents(svc: Service) -> list[Any]:
    """The traceparent stored with each incident.created event."""
    stmt = select(events.c.traceparent).where(events.c.type == "incident.created")
    async with svc.ctx.db.read() as conn:
        return list((await conn.execute(stmt)).scalars())


async def test_an_alert_to_each_delivery_attempt_is_one_trace(
    live: Service, exporter: InMemorySpanExporter
) -> None:
    tenant = await live.tenant("acme")
    async with Receiver() as receiver:
        receiver.set_behavior("/hook", Fail(500, times=1))  # two attempts: a retry is claimed
        await subscribe(live, tenant, receiver.url_for("/hook"))
        resp = await post(live, tenant, alert("disk"), headers={"traceparent": CALLER})
        assert resp.status_code == 202, resp.text
        first, *_ = await receiver.wait_for(1)
        # the second attempt is claimed from the queue: as another process's engine would, it
        # knows the event's trace only from the log
        spans._parents.clear()
        requests = await receiver.wait_for(2)
        attempts = await ended(exporter, "webhook.attempt", 2)

    request = only(await ended(exporter, "POST /v1/webhooks/{tenantId}/{provider}"))
    applied = only(await ended(exporter, "ingest.apply"))
    appended = only(appended_of(await ended(exporter, "event.append"), "incident.created"))
    # the caller's trace goes on: every span of the chain is in it
    for span in (request, applied, appended, *attempts):
        assert hexes(span)[0] == CALLER_TRACE, span.name
    assert request.kind == SpanKind.SERVER and parent_of(request) == CALLER_SPAN
    assert request.attributes["http.route"] == "/v1/webhooks/{tenantId}/{provider}"
    assert request.attributes["http.response.status_code"] == 202
    assert parent_of(applied) == hexes(request)[1]
    assert applied.attributes["causeflow.alert.actions"] == ("created",)
    assert parent_of(appended) == hexes(applied)[1]
    assert appended.attributes["causeflow.event.type"] == "incident.created"
    # the event keeps its span's context in the log
    assert await stored_traceparents(live) == [f"00-{CALLER_TRACE}-{hexes(appended)[1]}-01"]
    # each attempt is a child of the event's span, and the receiver joins the attempt's span
    assert sorted(a.attributes["causeflow.delivery.attempt"] for a in attempts) == [1, 2]
    by_span = {hexes(a)[1]: a for a in attempts}
    for req in requests[:2]:
        version, trace_id, span_id, flags = req.headers["traceparent"].split("-")
        assert (version, trace_id, flags) == ("00", CALLER_TRACE, "01")
        assert parent_of(by_span[span_id]) == hexes(appended)[1]
    failed = next(a for a in attempts if a.attributes["causeflow.delivery.attempt"] == 1)
    assert failed.attributes["http.response.status_code"] == 500
    assert not failed.status.is_ok
    assert first.headers["traceparent"] != requests[1].headers["traceparent"]


async def test_without_a_caller_trace_the_request_starts_one(
    live: Service, exporter: InMemorySpanExporter
) -> None:
    tenant = await live.tenant("acme")
    async with Receiver() as receiver:
        await subscribe(live, tenant, receiver.url_for("/hook"))
        resp = await post(live, tenant, alert("cpu"))
        assert resp.status_code == 202
        [req] = await receiver.wait_for(1)
    request = only(await ended(exporter, "POST /v1/webhooks/{tenantId}/{provider}"))
    assert request.parent is None
    assert req.headers["traceparent"].split("-")[1] == hexes(request)[0]


@pytest.mark.parametrize(
    "sent",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # invalid: all zeros
        "not a traceparent",
        "00-" + "a" * 32 + "-" + "b" * 16 + "-01\u2028",
    ],
)
async def test_a_malformed_caller_traceparent_starts_a_new_trace(
    live: Service, exporter: InMemorySpanExporter, sent: str
) -> None:
    resp = await live.client.get("/healthz", headers={"traceparent": sent.encode("utf-8")})
    assert resp.status_code == 200
    request = only(await ended(exporter, "GET /healthz"))
    assert request.parent is None


async def test_tracing_off_no_span_no_header_nothing_stored(live: Service) -> None:
    assert not spans.enabled()
    tenant = await live.tenant("acme")
    async with Receiver() as receiver:
        await subscribe(live, tenant, receiver.url_for("/hook"))
        # a caller's trace context is not passed on either while tracing is off
        resp = await post(live, tenant, alert("disk"), headers={"traceparent": CALLER})
        assert resp.status_code == 202
        [req] = await receiver.wait_for(1)
    assert "traceparent" not in req.headers and "tracestate" not in req.headers
    assert await stored_traceparents(live) == [None]


# --- publish -> stream ------------------------------------------------------------------------


@pytest.fixture
async def streaming(tmp_path: Path) -> AsyncIterator[LiveService]:
    settings = make_settings(tmp_path, sse_ping_seconds=5, event_poll_seconds=0.5)
    async with live_service(settings) as svc:
        yield svc


async def test_a_publish_to_the_stream_frame_written_for_it(
    streaming: LiveService, exporter: InMemorySpanExporter
) -> None:
    tenant = await streaming.tenant()
    async with streaming.stream(tenant) as one, streaming.stream(tenant) as two:
        await opened(one)
        await opened(two)
        body = {"event": "incident.created", "data": sample_data("incident.created")}
        headers = {**tenant.key_headers, "traceparent": CALLER, "tracestate": "vendor=1"}
        async with streaming.session.post(
            streaming.base_url + "/v1/events", json=body, headers=headers
        ) as resp:
            assert resp.status == 201, await resp.text()
            event_id = (await resp.json())["id"]
        assert (await next_event(one)).id == event_id
        assert (await next_event(two)).id == event_id
    request = only(await ended(exporter, "POST /v1/events"))
    appended = only(appended_of(await ended(exporter, "event.append"), "incident.created"))
    sent = only(await ended(exporter, "stream.send"))
    assert parent_of(request) == CALLER_SPAN
    assert request.get_span_context().trace_state.get("vendor") == "1"
    assert parent_of(appended) == hexes(request)[1]
    assert appended.attributes["causeflow.event.id"] == event_id
    # the frame's span is linked to the event's span, not a part of the publish's trace
    [link] = sent.links
    assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == hexes(appended)
    assert sent.attributes["causeflow.event.id"] == event_id
    assert sent.attributes["causeflow.stream.count"] == 2
    assert sent.kind == SpanKind.PRODUCER

"""The stream's surface: response head and preamble, auth, tickets, filters, isolation, caps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from causeflow.stream.connection import TransportSink
from tests.stream.live import FAST, LiveService, live_service, next_event, next_events
from tests.support.inproc import make_settings
from tests.support.sse import SseHttpError

pytestmark = pytest.mark.integration


async def test_head_preamble_and_live_events(live_sqlite: LiveService) -> None:
    live = live_sqlite
    acme = await live.tenant()
    before = REGISTRY.get_sample_value("causeflow_sse_connections") or 0
    async with live.stream(acme) as stream:
        assert REGISTRY.get_sample_value("causeflow_sse_connections") == before + 1
        headers = stream.response.headers
        assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert headers["Cache-Control"] == "no-cache"
        assert headers["X-Accel-Buffering"] == "no"
        assert "Content-Encoding" not in headers
        assert "X-RateLimit-Limit" in headers
        assert (await stream.next(timeout=5)).event == "ping"  # the preamble was read before
        assert stream.parser.retry == 3000
        assert stream.parser.comments[0] == "stream open"
        published = await live.publish(acme, 3)
        got = await next_events(stream, 3)
    assert [e.id for e in got] == [p.id for p in published]
    assert [e.event for e in got] == ["incident.created"] * 3
    assert [e.data for e in got] == [p.envelope for p in published]  # byte for byte


async def test_uvicorn_streams_use_the_direct_sink(live_sqlite: LiveService) -> None:
    # Under uvicorn the hub writes straight to the socket (the fast path), not via a queue,
    # also with uvloop's transports (what `causeflow serve` runs).
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    acme = await live_sqlite.tenant()
    async with live_sqlite.stream(acme) as stream:
        await stream.next(timeout=5)
        [conn] = live_sqlite.hub.connections()
        assert isinstance(conn.sink, TransportSink)


async def test_first_bytes_come_at_once_and_the_stream_is_live_by_then(
    live_sqlite: LiveService,
) -> None:
    acme = await live_sqlite.tenant()
    before = await live_sqlite.publish(acme, 2)
    async with live_sqlite.stream(acme) as stream:
        # The preamble is there before any event or ping; whatever is committed from now on
        # arrives, and what was committed before does not.
        chunk = await asyncio.wait_for(stream.response.content.readany(), 2)
        assert chunk.startswith(b"retry: 3000\n: stream open\n\n")
        stream.parser.feed(chunk.decode())
        after = await live_sqlite.publish(acme, 1)
        got = await next_event(stream)
    assert got.id == after[0].id
    assert got.id not in {e.id for e in before}


@pytest.mark.parametrize(
    ("who", "status"),
    [("nobody", 401), ("bad-key", 401), ("bad-jwt", 401), ("ingest-key", 403)],
)
async def test_refused_before_the_stream_starts(
    live_sqlite: LiveService, who: str, status: int
) -> None:
    acme = await live_sqlite.tenant()
    headers = {
        "nobody": {},
        "bad-key": {"X-API-Key": "cflo_" + "0" * 64},
        "bad-jwt": {"Authorization": "Bearer not.a.jwt"},
        "ingest-key": {"X-API-Key": acme.ingest_key},
    }[who]
    async with live_sqlite.session.get(live_sqlite.stream_url, headers=headers) as response:
        assert response.status == status
        assert response.content_type == "application/json"
        body = await response.json()
    assert set(body) >= {"error", "message"}
    assert not live_sqlite.hub.connections()


@pytest.mark.parametrize("credential", ["member-jwt", "admin-jwt", "read-key"])
async def test_accepted_credentials(live_sqlite: LiveService, credential: str) -> None:
    acme = await live_sqlite.tenant()
    ctx = live_sqlite.ctx
    if credential == "read-key":
        async with live_sqlite.session.post(
            live_sqlite.base_url + "/v1/api-keys",
            json={"name": "reader", "scopes": ["events:read"]},
            headers=acme.admin_headers,
        ) as response:
            assert response.status == 201, await response.text()
            headers = {"X-API-Key": (await response.json())["key"]}
    else:
        role = credential.split("-")[0]
        token = ctx.tokens.mint(tenant_id=acme.id, role=role, now=ctx.clock.now(), ttl=600)
        headers = {"Authorization": f"Bearer {token}"}
    async with live_sqlite.stream(headers=headers) as stream:
        [event] = await live_sqlite.publish(acme)
        assert (await next_event(stream)).id == event.id


async def test_tickets_work_on_the_stream_only_and_can_be_reused(
    live_sqlite: LiveService,
) -> None:
    acme = await live_sqlite.tenant()
    async with live_sqlite.session.post(
        live_sqlite.base_url + "/v1/notifications/stream-tickets", headers=acme.key_headers
    ) as response:
        assert response.status == 201
        body = await response.json()
    assert set(body) == {"ticket", "expiresAt"}
    assert body["expiresAt"].endswith("Z")
    ticket = body["ticket"]
    for _ in range(2):  # reusable for reconnects until it expires
        async with live_sqlite.stream(headers={}, token=ticket) as stream:
            [event] = await live_sqlite.publish(acme)
            assert (await next_event(stream)).id == event.id
    # Not a credential anywhere else, however it is presented.
    for headers, params in (({}, {"token": ticket}), ({"Authorization": f"Bearer {ticket}"}, {})):
        async with live_sqlite.session.get(
            live_sqlite.base_url + "/v1/events", headers=headers, params=params
        ) as response:
            assert response.status in (401, 403)
            assert "error" in await response.json()
    # A ticket cannot mint tickets.
    async with live_sqlite.session.post(
        live_sqlite.base_url + "/v1/notifications/stream-tickets", params={"token": ticket}
    ) as response:
        assert response.status in (401, 403)


async def test_an_ingest_key_gets_no_ticket(live_sqlite: LiveService) -> None:
    acme = await live_sqlite.tenant()
    async with live_sqlite.session.post(
        live_sqlite.base_url + "/v1/notifications/stream-tickets",
        headers={"X-API-Key": acme.ingest_key},
    ) as response:
        assert response.status == 403
        assert (await response.json())["error"] == "forbidden"


async def test_filters_by_type_and_incident(live_sqlite: LiveService) -> None:
    acme = await live_sqlite.tenant()
    inc_a, inc_b = "inc_01M86BHTRK6CQ643DZVMXXQKFA", "inc_01M86BHTRK6CQ643DZVMXXQKFB"
    by_type = live_sqlite.stream(acme, events="incident.created,remediation.proposed")
    by_incident = live_sqlite.stream(acme, incidentId=inc_a)
    both = live_sqlite.stream(acme, events="incident.status_changed", incidentId=inc_a)
    async with by_type as s_type, by_incident as s_inc, both as s_both:
        for s in (s_type, s_inc, s_both):
            await s.next(timeout=5)
        plan = [
            ("incident.created", inc_a),
            ("incident.status_changed", inc_a),
            ("incident.created", inc_b),
            ("incident.status_changed", inc_b),
            ("tenant.updated", None),
            ("remediation.proposed", inc_b),
        ]
        published = []
        for event_type, incident in plan:
            data = {"incidentId": incident} if incident else {"tenantId": acme.id, "changes": {}}
            published += await live_sqlite.publish(acme, 1, event_type, data=data)
        # A last event every stream matches marks the end of what each should have seen.
        end = await live_sqlite.publish(
            acme, 1, "incident.status_changed", data={"incidentId": inc_a}
        )
        want_type = [published[i].id for i in (0, 2, 5)]
        want_inc = [published[i].id for i in (0, 1)] + [end[0].id]
        want_both = [published[1].id, end[0].id]
        assert [e.id for e in await next_events(s_type, 3)] == want_type
        assert [e.id for e in await next_events(s_inc, 3)] == want_inc
        assert [e.id for e in await next_events(s_both, 2)] == want_both


async def test_an_unknown_type_in_the_filter_is_a_validation_error(
    live_sqlite: LiveService,
) -> None:
    acme = await live_sqlite.tenant()
    with pytest.raises(SseHttpError) as caught:
        async with live_sqlite.stream(acme, events="incident.created,nope.never"):
            pass
    assert caught.value.status == 422
    assert '"validation_error"' in caught.value.body


async def test_a_stream_sees_only_its_own_tenant(live: LiveService) -> None:
    acme, globex = await live.tenant("acme"), await live.tenant("globex")
    async with live.stream(acme) as s_acme, live.stream(globex) as s_globex:
        await s_acme.next(timeout=5)
        await s_globex.next(timeout=5)
        mine = await live.publish(acme, 2)
        theirs = await live.publish(globex, 2)
        more = await live.publish(acme, 1)
        got_acme = await next_events(s_acme, 3)
        got_globex = await next_events(s_globex, 2)
    assert [e.id for e in got_acme] == [e.id for e in mine + more]
    assert [e.id for e in got_globex] == [e.id for e in theirs]
    assert all(e.json()["tenantId"] == acme.id for e in got_acme)


async def test_streams_per_tenant_are_capped(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sse_max_streams_per_tenant=2, **FAST)
    async with live_service(settings) as svc:
        acme, globex = await svc.tenant("acme"), await svc.tenant("globex")
        async with svc.stream(acme) as one, svc.stream(acme) as two:
            await one.next(timeout=5)
            await two.next(timeout=5)
            with pytest.raises(SseHttpError) as caught:
                async with svc.stream(acme):
                    pass
            assert caught.value.status == 429
            assert '"error":"too_many_streams"' in caught.value.body
            async with svc.stream(globex) as other:  # another tenant is not affected
                await other.next(timeout=5)
        # Once the client has gone, its slot is free again.
        async with asyncio.timeout(5):
            while svc.hub.connections():
                await asyncio.sleep(0.02)
        async with svc.stream(acme) as again:
            await again.next(timeout=5)


async def test_the_stream_is_documented(live_sqlite: LiveService) -> None:
    async with live_sqlite.session.get(live_sqlite.base_url + "/openapi.json") as response:
        assert response.status == 200
        spec = await response.json()
    stream = spec["paths"]["/v1/notifications/stream"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert {"events", "incidentId", "lastEventId", "Last-Event-ID"} <= {
        p["name"] for p in stream["parameters"]
    }
    assert "/v1/notifications/stream-tickets" in spec["paths"]

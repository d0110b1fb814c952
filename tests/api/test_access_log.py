"""The access log: one `causeflow.access` record per request, in text and in JSON, with the
route template and never a credential; and the request id every response carries."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from causeflow.logtext import JsonFormatter, LogFormatter
from tests.support.inbound import alert, post
from tests.support.inproc import Service, make_settings, running_service

pytestmark = pytest.mark.integration

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # what `causeflow serve` writes
SUBS = "/v1/webhook-subscriptions"


class Captured:
    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if "causeflow.access" in line]

    def records(self) -> list[dict[str, object]]:
        found = [orjson.loads(line) for line in self.text.splitlines()]
        return [r for r in found if r["logger"] == "causeflow.access"]


@pytest.fixture(params=["text", "json"])
def captured(request: pytest.FixtureRequest) -> Iterator[Captured]:
    formatter = JsonFormatter() if request.param == "json" else LogFormatter(TEXT)
    found = Captured(formatter)
    logger = logging.getLogger("causeflow.access")
    logger.addHandler(found.handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield found
    finally:
        logger.removeHandler(found.handler)
        logger.setLevel(level)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    async with running_service(make_settings(tmp_path, run_workers=False)) as svc:
        yield svc


def one_line(captured: Captured, fmt_json: bool) -> dict[str, object] | str:
    if fmt_json:
        [record] = captured.records()
        return record
    [line] = captured.lines()
    return line


async def test_a_request_in_each_format(service: Service, captured: Captured) -> None:
    tenant = await service.tenant("acme")
    sub_id = "sub_01JD0000000000000000000000"
    resp = await service.client.get(
        f"{SUBS}/{sub_id}", headers={**tenant.key_headers, "X-Request-Id": "req-42.a"}
    )
    assert resp.status_code == 404
    assert resp.headers["X-Request-Id"] == "req-42.a"
    if captured.text.startswith("{"):
        [record] = captured.records()
        assert record["level"] == "INFO"
        assert record["method"] == "GET"
        assert record["route"] == SUBS + "/{subscription_id}"
        assert record["status"] == 404
        assert record["tenant_id"] == tenant.id
        assert record["request_id"] == "req-42.a"
        assert isinstance(record["duration_ms"], float) and record["duration_ms"] >= 0
        assert str(record["time"]).endswith("Z")
    else:
        [line] = captured.lines()
        assert f"GET {SUBS}/{{subscription_id}} 404 " in line
        assert f"tenant={tenant.id} request_id=req-42.a" in line
    assert sub_id not in captured.text  # the template, never the raw path
    assert tenant.api_key not in captured.text


async def test_credentials_never_appear(service: Service, captured: Captured) -> None:
    tenant = await service.tenant("acme")
    secret_ticket = "cflo_" + "s" * 40
    # a refused stream ticket in the query string
    resp = await service.client.get(f"/v1/notifications/stream?token={secret_ticket}")
    assert resp.status_code == 401
    # an inbound alert with its key in the query string, and a bearer token
    resp = await post(
        service, tenant, alert("disk"), send_key=False, params={"apiKey": tenant.ingest_key}
    )
    assert resp.status_code == 202, resp.text
    resp = await service.client.get("/v1/incidents", headers=tenant.admin_headers)
    assert resp.status_code == 200
    text = captured.text
    for secret in (secret_ticket, tenant.ingest_key, tenant.admin_token, "token=", "apiKey"):
        assert secret not in text
    assert tenant.ingest_key[:12] not in text and tenant.admin_token[:20] not in text
    assert "/v1/notifications/stream 401" in text or '"status":401' in text
    # the inbound route is the gateway's own: its template, and the tenant once its key passed
    inbound = [line for line in text.splitlines() if "/v1/webhooks/" in line]
    assert len(inbound) == 1 and "{tenantId}/{provider}" in inbound[0]
    assert tenant.id in inbound[0]


@pytest.mark.parametrize(
    ("method", "path", "status", "route"),
    [
        ("GET", "/v1/no-such-thing", 404, "unmatched"),
        ("GET", "/favicon-nope.ico", 404, "unmatched"),
        ("POST", SUBS, 422, SUBS),  # a body that is not a subscription
        ("GET", "/v1/incidents", 401, "/v1/incidents"),  # a wrong key, refused before routing
        ("DELETE", "/v1/incidents", 405, "/v1/incidents"),
    ],
)
async def test_error_statuses_and_their_routes(
    service: Service, captured: Captured, method: str, path: str, status: int, route: str
) -> None:
    tenant = await service.tenant("acme")
    headers = tenant.admin_headers
    if status == 401:
        headers = {"X-API-Key": "cflo_" + "x" * 40}
    resp = await service.client.request(method, path, headers=headers, json={"url": 3})
    assert resp.status_code == status, resp.text
    if captured.text.startswith("{"):
        [record] = captured.records()
        assert (record["route"], record["status"]) == (route, status)
        # the tenant once authenticated (credentials are read on /v1 routes only)
        authenticated = status != 401 and path.startswith("/v1/")
        assert record["tenant_id"] == (tenant.id if authenticated else None)
    else:
        [line] = captured.lines()
        assert f" {method} {route} {status} " in line
    assert "x" * 40 not in captured.text


@pytest.mark.parametrize(
    "sent",
    ["has space", "x" * 129, "line\nbreak", "", "ümlaut"],
)
async def test_a_request_id_that_is_not_plain_is_replaced(
    service: Service, captured: Captured, sent: str
) -> None:
    resp = await service.client.get("/healthz", headers={"X-Request-Id": sent.encode()})
    assert resp.status_code == 200
    given = resp.headers["X-Request-Id"]
    assert given != sent and len(given) == 32 and int(given, 16) >= 0
    assert given in captured.text


async def test_every_request_gets_its_own_request_id(service: Service, captured: Captured) -> None:
    first = await service.client.get("/healthz")
    second = await service.client.get("/healthz")
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]
    assert len(captured.text.splitlines()) == 2


async def test_the_access_log_can_be_switched_off(tmp_path: Path, captured: Captured) -> None:
    settings = make_settings(tmp_path, run_workers=False, access_log=False)
    async with running_service(settings) as svc:
        resp = await svc.client.get("/healthz")
    assert resp.status_code == 200
    assert resp.headers["X-Request-Id"]  # the request id stays
    assert captured.text == ""


async def test_a_stream_logs_once_when_it_ends(tmp_path: Path, captured: Captured) -> None:
    from tests.stream.live import live_service, opened

    settings = make_settings(tmp_path, sse_ping_seconds=5, event_poll_seconds=0.5)
    async with live_service(settings) as live:
        tenant = await live.tenant()
        async with live.stream(tenant) as stream:
            await opened(stream)
            await asyncio.sleep(0.3)
            assert "/v1/notifications/stream" not in captured.text  # still open: no line yet
        deadline = time.monotonic() + 10
        while "/v1/notifications/stream" not in captured.text:
            assert time.monotonic() < deadline, captured.text
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    lines = [ln for ln in captured.text.splitlines() if "/v1/notifications/stream" in ln]
    assert len(lines) == 1
    if lines[0].startswith("{"):
        record = orjson.loads(lines[0])
        assert (record["status"], record["tenant_id"]) == (200, tenant.id)
        assert record["duration_ms"] >= 300  # the stream's whole life
    else:
        assert " GET /v1/notifications/stream 200 " in lines[0]
        assert float(lines[0].split(" 200 ")[1].split("ms")[0]) >= 300

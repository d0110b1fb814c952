"""Debian's nginx runs `deploy/nginx/causeflow.conf` in front of a real `causeflow serve`.

The sample is rendered for loopback ports and a certificate from a test CA (`trustme`), and the
service runs with its default CAUSEFLOW_FORWARDED_ALLOW_IPS (loopback: nginx on the same host).
Through the proxy:

- HTTPS requests reach the service, and plain http only redirects to https;
- the event stream is not held back: an event arrives while the stream is still open, without
  compression, although the client accepts gzip;
- the dashboard's cookies come back `Secure` (the service saw https), while the same sign-in
  straight to the service over http gets none;
- a client cannot choose the address it is counted against (nginx replaces X-Forwarded-For);
- the body limit is the service's own.

Skipped without nginx, unless CAUSEFLOW_REQUIRE_NGINX=1 (CI) makes that a failure.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import pytest
import trustme

from causeflow.settings import Settings
from tests.support.forwarded import cookie_flags, same_budget, sign_in
from tests.support.nginx import SAMPLE, Nginx, require_nginx
from tests.support.processes import Deployment, ServiceProcess
from tests.support.sse import SseStream

pytestmark = pytest.mark.process

STEP_TIMEOUT = 10.0


@dataclass
class Stack:
    nginx: Nginx
    server: ServiceProcess
    tenant: dict[str, str]
    tls: ssl.SSLContext

    def proxied(self) -> httpx.Client:
        return httpx.Client(base_url=self.nginx.base_url, verify=self.tls, timeout=STEP_TIMEOUT)

    def direct(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.base_url, timeout=STEP_TIMEOUT)

    @property
    def key(self) -> dict[str, str]:
        return {"X-API-Key": self.tenant["apiKey"]}


def _certificate(directory: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    for n, blob in enumerate(issued.cert_chain_pems):
        blob.write_to_path(str(cert), append=n > 0)
    issued.private_key_pem.write_to_path(str(key))
    return ca, cert, key


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = require_nginx()
    tmp = tmp_path_factory.mktemp("nginx")
    ca, cert, key = _certificate(tmp)
    tls = ssl.create_default_context()
    ca.configure_trust(tls)
    env = {"CAUSEFLOW_INGEST_REFUSED_RATE_LIMIT_PER_MINUTE": "1000"}
    with Deployment(tmp / "service", env=env) as dep:
        tenant = dep.create_tenant("acme")
        server = dep.add_server()
        assert server.port is not None
        with Nginx(binary, server.port, cert, key) as nginx:
            try:
                yield Stack(nginx, server, tenant, tls)
            except BaseException:
                print(nginx.error_log()[-4000:])
                raise


def test_https_requests_reach_the_service(stack: Stack) -> None:
    with stack.proxied() as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert "max-age=" in health.headers["strict-transport-security"]
        events = client.get("/v1/events", headers=stack.key)
        assert events.status_code == 200, events.text
        assert events.headers["x-ratelimit-limit"]  # the service's own answer, passed on
        denied = client.get("/v1/events")
        assert denied.status_code == 401 and denied.json()["error"] == "unauthorized"
    plain = httpx.get(f"http://127.0.0.1:{stack.nginx.http_port}/v1/events", timeout=5)
    assert plain.status_code == 301
    assert plain.headers["location"].startswith("https://")


async def test_stream_events_arrive_through_the_proxy_unbuffered(stack: Stack) -> None:
    connector = aiohttp.TCPConnector(ssl=stack.tls)
    async with aiohttp.ClientSession(connector=connector) as session:
        url = stack.nginx.base_url + "/v1/notifications/stream"
        headers = {**stack.key, "Accept-Encoding": "gzip, deflate"}
        async with SseStream(session, url, headers) as stream:
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in stream.response.headers
            created = await session.post(
                stack.nginx.base_url + "/v1/incidents",
                json={"title": "Checkout is slow through the proxy", "severity": "high"},
                headers=stack.key,
            )
            assert created.status == 201, await created.text()
            incident = (await created.json())["id"]
            # The frame comes through while the stream stays open: nothing waits for a full
            # buffer or for the end of the response.
            while True:
                event = await stream.next(timeout=STEP_TIMEOUT)
                if event.event == "incident.created":
                    break
            assert event.json()["data"]["incidentId"] == incident
            assert not stream.ended and not stream.response.content.at_eof()


def test_the_dashboard_cookie_is_secure_through_the_proxy(stack: Stack) -> None:
    with stack.proxied() as client:
        login, session = sign_in(client, stack.tenant["apiKey"])
        assert "secure" in cookie_flags(login)
        assert {"secure", "httponly", "samesite=strict"} <= cookie_flags(session)
        # The session works over https (the browser sends a Secure cookie there).
        session_id = session.split(";", 1)[0]
        page = client.get("/ui/incidents", headers={"Cookie": session_id})
        assert page.status_code == 200, page.text
    # The same process, reached over plain http without the proxy, sets no Secure flag: the
    # flag above came from the scheme nginx reported.
    with stack.direct() as client:
        login, session = sign_in(client, stack.tenant["apiKey"])
        assert "secure" not in cookie_flags(login) | cookie_flags(session)


def test_a_client_cannot_choose_its_address_through_the_proxy(stack: Stack) -> None:
    with stack.proxied() as client:
        first = {"X-Forwarded-For": "203.0.113.21"}
        second = {"X-Forwarded-For": "203.0.113.22"}
        # Both counted against the address nginx saw, whatever the client claimed.
        assert same_budget(client, stack.tenant["tenantId"], first, second)
    with stack.direct() as client:
        # Straight from loopback (a trusted proxy address) the same claims are believed, so
        # the check above can tell the two apart.
        assert not same_budget(client, stack.tenant["tenantId"], first, second)


def test_the_stream_location_outlives_the_keepalive() -> None:
    """A quiet stream still gets a ping every CAUSEFLOW_SSE_PING_SECONDS: nginx must not time
    the connection out before one."""
    text = SAMPLE.read_text()
    block = text[text.index("location = /v1/notifications/stream {") :]
    block = block[: block.index("}")]
    match = re.search(r"proxy_read_timeout (\d+)([smh]);", block)
    assert match, "the stream location sets no proxy_read_timeout"
    seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    assert seconds >= 4 * Settings.model_fields["sse_ping_seconds"].default
    for directive in ("proxy_buffering off;", "gzip off;"):
        assert directive in block


def test_the_body_limit_is_the_services(stack: Stack) -> None:
    match = re.search(r"client_max_body_size (\d+)([km]?);", SAMPLE.read_text())
    assert match, "the sample sets no client_max_body_size"
    size = int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2)]
    assert size == Settings.model_fields["max_body_bytes"].default
    with stack.proxied() as client:
        url = f"/v1/webhooks/{stack.tenant['tenantId']}/custom"
        headers = {"X-API-Key": stack.tenant["ingestKey"], "Content-Type": "application/json"}
        over = client.post(url, content=b" " * (size + 1), headers=headers)
        assert over.status_code == 413
        pad = b" " * (size - 200)
        under = client.post(url, content=b'{"title": "Big but fine"}' + pad, headers=headers)
        assert under.status_code == 202, under.text

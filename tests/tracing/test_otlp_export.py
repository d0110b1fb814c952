"""`causeflow serve` with the OTEL_* variables pointing at an OTLP/HTTP receiver on loopback:
its spans arrive there, as protobuf `ExportTraceServiceRequest`s, under the configured service
name; and switched off (`OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER=none`) nothing is sent."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from causeflow_sdk.models import sample_data
from tests.support.pg import fresh_database, require_pg
from tests.support.ports import free_port
from tests.support.processes import Deployment, ServiceProcess, service_env
from tests.support.receiver import Receiver, ThreadedReceiver

pytestmark = pytest.mark.process

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{CALLER_TRACE}-b7ad6b7169203331-01"


def serve(tmp_path: Path, env: dict[str, str]) -> ServiceProcess:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    environ = service_env({"CAUSEFLOW_DATA_DIR": str(data)})
    environ = {k: v for k, v in environ.items() if not k.startswith("OTEL_")}  # the test's own
    process = ServiceProcess(
        "serve",
        {**environ, **env},
        free_port(),
        tmp_path / "serve.log",
    )
    process.start()
    return process


def get(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (loopback)
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return int(response.status)


def exported_spans(bodies: list[bytes]) -> list[tuple[dict[str, Any], Any]]:
    """(resource attributes, span) of every span in these export requests."""
    found = []
    for body in bodies:
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        for resource_spans in message.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                found += [(attributes, span) for span in scope_spans.spans]
    return found


async def test_spans_reach_an_otlp_receiver(tmp_path: Path) -> None:
    async with Receiver() as collector:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_SERVICE_NAME": "causeflow-under-test",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        process = serve(tmp_path, env)
        try:
            status = await asyncio.to_thread(
                get, process.base_url + "/healthz", {"traceparent": CALLER}
            )
            assert status == 200
            deadline = time.monotonic() + 20
            while True:
                posts = [r for r in collector.requests if r.path == "/v1/traces"]
                found = exported_spans([r.body for r in posts])
                health = [s for _, s in found if s.trace_id.hex() == CALLER_TRACE]
                if health:
                    break
                assert time.monotonic() < deadline, process.log_tail()
                await asyncio.sleep(0.1)
        finally:
            process.terminate()
    assert all(r.method == "POST" for r in posts)
    assert posts[0].headers["Content-Type"] == "application/x-protobuf"
    [span] = health  # the caller's trace, continued
    assert span.name == "GET /healthz"
    assert span.kind == span.SPAN_KIND_SERVER
    assert span.parent_span_id.hex() == "b7ad6b7169203331"
    resource = next(attributes for attributes, s in found if s is span)
    assert resource["service.name"] == "causeflow-under-test"
    assert resource["service.version"]


@pytest.mark.parametrize("off", [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}])
async def test_switched_off_nothing_is_exported(tmp_path: Path, off: dict[str, str]) -> None:
    async with Receiver() as collector:
        # the endpoint names the collector, and the switch says no
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        process = serve(tmp_path, {**env, **off})
        try:
            for _ in range(5):
                assert await asyncio.to_thread(get, process.base_url + "/healthz", {}) == 200
            await asyncio.sleep(0.5)
        finally:
            process.terminate()
        assert collector.requests == []
    assert "tracing on" not in process.log_text()


def test_a_worker_process_continues_the_trace_of_the_request(tmp_path: Path) -> None:
    """PostgreSQL: the API process appends the event, a `causeflow worker` sends it; the trace
    context crosses between them only through the log."""
    require_pg()
    env = {
        "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
        "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
        "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
        "CAUSEFLOW_WEBHOOK_POLL_SECONDS": "0.2",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    with (
        fresh_database() as url,
        ThreadedReceiver() as collector,
        ThreadedReceiver() as receiver,
        Deployment(tmp_path, url, env=env) as deployment,
    ):
        creds = deployment.create_tenant("acme")
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_TRACES_EXPORTER": None}
        server = deployment.add_server(
            CAUSEFLOW_RUN_WORKERS="false", OTEL_SERVICE_NAME="cf-api", **otel
        )
        worker = deployment.add_worker(OTEL_SERVICE_NAME="cf-worker", **otel)
        headers = {"Authorization": f"Bearer {creds['adminToken']}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as client:
            body = {"url": receiver.url_for("/hook"), "events": ["incident.created"]}
            assert client.post("/v1/webhook-subscriptions", json=body).status_code == 201
            event = {"event": "incident.created", "data": sample_data("incident.created")}
            resp = client.post("/v1/events", json=event, headers={"traceparent": CALLER})
            assert resp.status_code == 201, resp.text
        [req] = receiver.wait_for_sync(1, path="/hook")
        worker.terminate()  # flushes its spans
        server.terminate()
        found = exported_spans([r.body for r in collector.requests if r.path == "/v1/traces"])
    assert req.headers["traceparent"].split("-")[1] == CALLER_TRACE
    ours = [
        (resource["service.name"], s) for resource, s in found if s.trace_id.hex() == CALLER_TRACE
    ]
    names = {(service, s.name) for service, s in ours}
    assert {("cf-api", "POST /v1/events"), ("cf-api", "event.append")} <= names
    [appended] = [s for service, s in ours if s.name == "event.append"]
    [attempt] = [s for service, s in ours if s.name == "webhook.attempt"]
    assert ("cf-worker", "webhook.attempt") in names
    assert attempt.parent_span_id == appended.span_id
    assert req.headers["traceparent"].split("-")[2] == attempt.span_id.hex()

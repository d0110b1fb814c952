"""The service's request spans are its own (api/access.py): a global OpenTelemetry tracer
provider that something else set (auto-instrumentation, another library) gets no second span
per request from the web framework, and the framework never consults it per request."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from causeflow.tracing import spans
from causeflow_sdk.models import sample_data
from tests.support.inproc import make_settings, running_service

pytestmark = pytest.mark.integration


async def test_a_global_tracer_provider_gets_no_framework_span(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    asked: list[str] = []

    def global_provider() -> TracerProvider:
        asked.append("tracer provider")
        return provider

    # what `trace.set_tracer_provider` would install, without its once-per-process global
    monkeypatch.setattr(trace, "get_tracer_provider", global_provider)
    assert not spans.enabled()
    async with running_service(make_settings(tmp_path, database_url)) as svc:
        tenant = await svc.tenant("acme")
        body = {"event": "incident.created", "data": sample_data("incident.created")}
        published = await svc.client.post("/v1/events", headers=tenant.admin_headers, json=body)
        assert published.status_code == 201, published.text
        listed = await svc.client.get("/v1/events", headers=tenant.admin_headers)
        assert listed.status_code == 200
        assert (await svc.client.get("/healthz")).status_code == 200
    assert memory.get_finished_spans() == ()
    assert asked == []
    provider.shutdown()

"""Installing the tracer when the `OTEL_*` variables ask for it (`switch.tracing_requested`).

The exporter is OTLP over HTTP (protobuf), configured by the standard variables the
OpenTelemetry SDK reads itself: `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `..._HEADERS`,
`..._TIMEOUT`, `OTEL_SERVICE_NAME` (default here: `causeflow`), `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER[_ARG]` and `OTEL_BSP_*` (the batch span processor). Propagation is W3C
trace context (`traceparent`, `tracestate`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from causeflow import __version__
from causeflow.tracing import spans
from causeflow.tracing.switch import tracing_requested

log = logging.getLogger("causeflow.tracing")


def configure(environ: Mapping[str, str]) -> bool:
    """Install an OTLP/HTTP tracer if the environment asks for one; True if tracing is on."""
    env = environ
    if not tracing_requested(env):
        return False
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol.strip() != "http/protobuf":
        log.warning("OTLP protocol %r is not supported: traces go over http/protobuf", protocol)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_* variables ask for traces, but OpenTelemetry is not installed "
            "(pip install 'causeflow[otel]'): tracing stays off"
        )
        return False
    attributes = {"service.version": __version__}
    named = "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not env.get("OTEL_SERVICE_NAME") and not named:
        attributes["service.name"] = "causeflow"
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    spans.install(provider)
    log.info("tracing on: spans are exported over OTLP/HTTP")
    return True

"""When the service traces: the standard variables decide, and off means no tracer at all."""

from __future__ import annotations

import pytest

from causeflow.tracing import spans
from causeflow.tracing.setup import configure
from causeflow.tracing.switch import tracing_requested

pytestmark = pytest.mark.unit

ENDPOINT = "http://127.0.0.1:4318"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "causeflow"}, False),  # naming the service is not asking
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": " OTLP "}, True),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, False),  # only OTLP is exported
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ENDPOINT + "/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        # an explicit "none" keeps it off whatever endpoint is set
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, False),
        # OTEL_SDK_DISABLED wins over everything
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
    ],
)
def test_the_switch(environ: dict[str, str], on: bool) -> None:
    assert tracing_requested(environ) is on


def test_nothing_set_installs_no_tracer() -> None:
    assert configure({}) is False
    assert not spans.enabled()
    assert spans.current_traceparent() is None


def test_off_every_helper_is_a_no_op() -> None:
    assert not spans.enabled()
    with spans.server_span("GET", {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}) as s:
        assert s is spans.NOOP
        assert s.traceparent is None
    with spans.attempt(
        "evt_1", delivery_id="msg_1", subscription_id="sub_1", attempt_number=1
    ) as a:
        headers: dict[str, str] = {}
        a.inject(headers)
        a.answered(500, None)
        assert headers == {}
    assert spans.event_appended(None, {}) is None
    spans.remember("evt_1", "00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert spans._parents == {}  # nothing kept while off
    spans.frames_sent([("evt_1", "incident.created", None, 3)])


def test_configure_installs_an_otlp_tracer_and_shutdown_removes_it() -> None:
    try:
        assert configure({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}) is True
        assert spans.enabled()
        resource = spans._provider.resource.attributes
        assert resource["service.name"] == "causeflow"  # the default name
    finally:
        spans.shutdown()
    assert not spans.enabled()


def test_an_explicit_service_name_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK reads OTEL_SERVICE_NAME itself (from the process environment).
    monkeypatch.setenv("OTEL_SERVICE_NAME", "cf-edge")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SERVICE_NAME": "cf-edge"}
    try:
        assert configure(env) is True
        assert spans._provider.resource.attributes["service.name"] == "cf-edge"
    finally:
        spans.shutdown()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "junk",
        "00-" + "0" * 32 + "-" + "b" * 16 + "-01",  # an all-zero trace id is invalid
        "00-" + "a" * 32 + "-" + "0" * 16 + "-01",
        "00-" + "a" * 31 + "-" + "b" * 16 + "-01",
        "00-" + "g" * 32 + "-" + "b" * 16 + "-01",
    ],
)
def test_malformed_traceparents_name_no_parent(value: str) -> None:
    assert spans.span_context(value) is None


def test_a_callers_tracestate_is_kept_up_to_its_bound() -> None:
    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    assert spans.span_context(parent, "vendor=1").trace_state.get("vendor") == "1"
    long = "vendor=" + "x" * spans.MAX_TRACESTATE
    assert len(spans.span_context(parent, long).trace_state) == 0

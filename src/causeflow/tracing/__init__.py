"""OpenTelemetry traces, off unless the standard `OTEL_*` variables ask for them.

`setup.configure` installs the tracer (`switch.tracing_requested` decides); `spans` holds the
service's spans and the trace context stored with each event. Without the `otel` extra, or
with tracing off, every helper is a no-op.
"""

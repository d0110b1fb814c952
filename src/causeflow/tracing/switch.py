"""Whether the service traces: decided from the standard `OTEL_*` variables alone. Pure.

Tracing is on when `OTEL_TRACES_EXPORTER` names `otlp`, or when it is unset and an OTLP
endpoint is given (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`).
`OTEL_SDK_DISABLED=true` wins over everything, and `OTEL_TRACES_EXPORTER=none` (or any list
without `otlp`) keeps it off whatever endpoint is set. With nothing set it is off.
"""

from __future__ import annotations

from collections.abc import Mapping

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """True when the environment asks for traces exported over OTLP."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return "otlp" in {name.strip() for name in exporters.split(",")}
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)

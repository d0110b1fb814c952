"""Prometheus metrics an operator needs (docs/reference.md §9.2), defined once per process."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_wsgi_app

EVENTS_APPENDED = Counter("causeflow_events_appended_total", "Events appended to the log", ["type"])
DELIVERIES = Counter("causeflow_deliveries_total", "Delivery attempts by outcome", ["outcome"])
ATTEMPT_LATENCY = Histogram(
    "causeflow_delivery_attempt_seconds",
    "Latency of webhook delivery attempts",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
)
# Only with CAUSEFLOW_METRICS_PER_SUBSCRIPTION=true: one series per subscription and outcome.
SUBSCRIPTION_ATTEMPTS = Counter(
    "causeflow_subscription_attempts_total",
    "Delivery attempts per subscription; outcome succeeded (a 2xx) or failed",
    ["subscription_id", "outcome"],
)
SUBSCRIPTION_ATTEMPT_LATENCY = Histogram(
    "causeflow_subscription_attempt_seconds",
    "Latency of delivery attempts per subscription",
    ["subscription_id"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
)
QUEUE_DEPTH = Gauge("causeflow_delivery_queue_depth", "Pending deliveries")
QUEUE_OLDEST_AGE = Gauge(
    "causeflow_delivery_queue_oldest_age_seconds",
    "Seconds since the oldest pending delivery was created (0 when none is pending)",
)
SSE_CONNECTIONS = Gauge("causeflow_sse_connections", "Open SSE streams in this process")
INBOUND_ALERTS = Counter(
    "causeflow_inbound_alerts_total",
    "Inbound alerts by provider and outcome",
    ["provider", "outcome"],
)
HTTP_REQUESTS = Counter(
    "causeflow_http_requests_total",
    "HTTP requests by method and status class",
    ["method", "status"],
)


def bearer_matches(expected: str, authorization: str | None) -> bool:
    """Whether an `Authorization` header carries `Bearer <expected>`, compared in constant time."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), expected.encode())


METRICS_REFUSED = {
    "error": "unauthorized",
    "message": "/metrics needs Authorization: Bearer <CAUSEFLOW_METRICS_TOKEN>",
}

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def metrics_wsgi_app(token: str) -> WsgiApp:
    """The exposition as a WSGI app (a worker's own metrics port), behind the token if one is
    set."""
    exposition: WsgiApp = make_wsgi_app(REGISTRY)
    if not token:
        return exposition
    refused = json.dumps(METRICS_REFUSED).encode() + b"\n"

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if bearer_matches(token, environ.get("HTTP_AUTHORIZATION")):
            return exposition(environ, start_response)
        start_response(
            "401 Unauthorized",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(refused))),
                ("WWW-Authenticate", "Bearer"),
            ],
        )
        return [refused]

    return guarded

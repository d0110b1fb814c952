"""Prometheus metrics an operator needs (docs/reference.md §9.2), defined once per process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPENDED = Counter("causeflow_events_appended_total", "Events appended to the log", ["type"])
DELIVERIES = Counter("causeflow_deliveries_total", "Delivery attempts by outcome", ["outcome"])
ATTEMPT_LATENCY = Histogram(
    "causeflow_delivery_attempt_seconds",
    "Latency of webhook delivery attempts",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
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

"""The explicit provider registry: URL path segment -> provider instance.

Written out by hand (no import-by-name discovery) so the set of accepted senders is visible in
one place and a typo in a URL can never import arbitrary modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from causeflow.ingest.providers.alertmanager import AlertmanagerProvider
from causeflow.ingest.providers.base import Provider
from causeflow.ingest.providers.cloudwatch import CloudWatchProvider
from causeflow.ingest.providers.custom import CustomProvider
from causeflow.ingest.providers.datadog import DatadogProvider
from causeflow.ingest.providers.grafana import GrafanaProvider
from causeflow.ingest.providers.newrelic import NewRelicProvider
from causeflow.ingest.providers.pagerduty import PagerDutyProvider
from causeflow.ingest.providers.sentry import SentryProvider

PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {
        "alertmanager": AlertmanagerProvider(),
        "cloudwatch": CloudWatchProvider(),
        "custom": CustomProvider(),
        "datadog": DatadogProvider(),
        "grafana": GrafanaProvider(),
        "newrelic": NewRelicProvider(),
        "pagerduty": PagerDutyProvider(),
        "sentry": SentryProvider(),
    }
)


def get_provider(name: str) -> Provider | None:
    """The provider for a URL segment (case-insensitive), or None -> 404 unknown_provider."""
    return PROVIDERS.get(name.lower())

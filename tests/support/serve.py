"""A real `causeflow serve` for client-library and devtools tests, with one tenant's key.

Deliveries may go to loopback over plain HTTP and rate limits are off, as in local development.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import Deployment, ServiceProcess

LIVE_ENV = {
    "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
    "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
    "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
    "CAUSEFLOW_WEBHOOK_RETRY_SCHEDULE": "200ms",
    "CAUSEFLOW_SSE_PING_SECONDS": "1",
}


@dataclass
class Live:
    deployment: Deployment
    server: ServiceProcess
    tenant: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.base_url

    @property
    def api_key(self) -> str:
        return self.tenant["apiKey"]


@contextmanager
def live_service(tmp_path: Path) -> Iterator[Live]:
    with Deployment(tmp_path, env=LIVE_ENV) as deployment:
        server = deployment.add_server()
        # The first `serve` on an empty store creates tenant "default" and hands over its
        # credentials; reading them saves a separate `tenant create` process.
        yield Live(deployment, server, deployment.first_run_credentials())

"""Where an attempt goes: the HTTP sender for webhooks (through `Egress` when the subscription
has a client certificate or delivery auth), the publisher pool for brokers.

All return a `SendResult`, so the delivery engine decides, records and retries the same way
whatever the subscription's type. A plain webhook, the common case, goes to the sender directly:
`Egress` would add nothing to its request.
"""

from __future__ import annotations

from collections.abc import Mapping

from causeflow.webhook.destinations.pool import PublisherPool
from causeflow.webhook.destinations.registry import WEBHOOK
from causeflow.webhook.egress import Egress
from causeflow.webhook.sender import SendResult
from causeflow.webhook.subscriptions import Subscription


class Deliverer:
    def __init__(self, webhooks: Egress, pool: PublisherPool) -> None:
        self.webhooks = webhooks
        self.sender = webhooks.sender
        self.pool = pool

    async def send(self, sub: Subscription, body: bytes, headers: Mapping[str, str]) -> SendResult:
        if sub.type == WEBHOOK:
            if sub.auth is None and sub.client_tls is None:
                return await self.sender.send(sub.url, body, headers)
            return await self.webhooks.send(sub, body, headers)
        return await self.pool.send(
            sub.id, sub.type, sub.target_url, sub.options or {}, body, headers
        )

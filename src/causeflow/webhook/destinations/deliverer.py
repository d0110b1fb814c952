"""Where an attempt goes: the HTTP sender (with its client certificates and delivery auth,
`Egress`) for webhooks, the publisher pool for brokers.

Both return a `SendResult`, so the delivery engine decides, records and retries the same way
whatever the subscription's type.
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
        self.pool = pool

    async def send(self, sub: Subscription, body: bytes, headers: Mapping[str, str]) -> SendResult:
        if sub.type == WEBHOOK:
            return await self.webhooks.send(sub, body, headers)
        return await self.pool.send(
            sub.id, sub.type, sub.target_url, sub.options or {}, body, headers
        )

"""Inbound alerts: authenticate, verify, parse, then de-duplicate into incidents in one transaction.

Everything that can refuse a request (key, signature, SNS certificate, parser) runs before the
transaction, so a refused or unreadable payload stores nothing. The transaction (shared with
concurrent deliveries, see ingest/batch.py) then records the sender's delivery id (a repeat
within `delivery_id_ttl_seconds` gets the first answer back), and applies each alert in payload
order: attach to the incident open for its (tenant, provider, fingerprint), open a new one,
resolve it, or ignore a resolve for nothing open. Acknowledgements attach (see `dedup.decide`).
Every writer takes the tenant's log head first, so two copies of one alert meet there: the
second sees the incident the first opened and attaches to it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from causeflow import errors
from causeflow.api.gateway import InboundBudget
from causeflow.context import AppContext
from causeflow.ingest.auth import authenticate
from causeflow.ingest.batch import Delivery
from causeflow.ingest.providers.base import (
    InvalidPayload,
    InvalidSignature,
    ParsedPayload,
    Provider,
    ProviderSecrets,
)
from causeflow.ingest.providers.registry import get_provider
from causeflow.ingest.runtime import InboundSettings, inbound_runtime
from causeflow.ingest.sns import SnsHttp, confirm_subscription, verify_sns
from causeflow.logtext import clean, clean_query
from causeflow.metrics import INBOUND_ALERTS

log = logging.getLogger("causeflow.ingest")


@dataclass(frozen=True)
class InboundRequest:
    tenant_id: str
    provider: str
    headers: Mapping[str, str]  # lower-case names
    query_string: str
    body: bytes


def _refused(request: InboundRequest, provider: str | None, exc: errors.CauseFlowError) -> None:
    if provider is not None:
        INBOUND_ALERTS.labels(provider, exc.code).inc()
    if isinstance(exc, errors.RateLimited):
        return  # a flood over its budget is counted, not written out line by line
    # The tenant id, provider and query are the client's text: escaped and bounded, and the
    # query's credentials (?apiKey=) redacted.
    log.info(
        "inbound %s/%s refused: %s %s (query: %s)",
        clean(request.tenant_id, 80),
        clean(request.provider, 40),
        exc.status,
        exc.code,
        clean_query(request.query_string),
    )


async def receive_alerts(
    ctx: AppContext, request: InboundRequest, budget: InboundBudget | None = None
) -> bytes:
    """Handle one inbound delivery; returns the 202 body or raises a CauseFlowError.

    With a `budget` (the gateway's requests), a request whose key is the tenant's spends the
    tenant's budget; one refused before that spends its client address's (and is answered 429
    once that is used up)."""
    provider = get_provider(request.provider)
    try:
        if provider is None:
            raise errors.UnknownProvider(f"unknown provider {request.provider!r}")
        parsed = await _admit(ctx, request, provider, budget)
    except errors.CauseFlowError as exc:
        answer = budget.refusal(exc) if budget is not None else exc
        _refused(request, provider.name if provider else None, answer)
        if answer is exc:
            raise
        raise answer from None
    return await store_alerts(ctx, request.tenant_id, provider.name, parsed, ctx.clock.now_ms())


async def _admit(
    ctx: AppContext, request: InboundRequest, provider: Provider, budget: InboundBudget | None
) -> ParsedPayload:
    """Key, budget, signatures and parsing: everything that may refuse the request, in that
    order."""
    runtime = inbound_runtime(ctx)
    key = await authenticate(
        ctx.key_cache, request.tenant_id, request.headers, request.query_string
    )
    if budget is not None:
        limits = await ctx.tenant_limits(key.tenant_id)
        budget.charge_tenant(key.tenant_id, limits.ingest_per_minute)
    inbound = await runtime.settings_cache.get(request.tenant_id) or InboundSettings()
    secrets = ProviderSecrets(
        webhook_secret=runtime.webhook_secret(key.webhook_secret_enc),
        sentry=inbound.secrets.get("sentry"),
        pagerduty=inbound.secrets.get("pagerduty"),
        grafana=inbound.secrets.get("grafana"),
    )
    try:
        signed = provider.verify(request.headers, request.body, secrets)
        parsed = provider.parse(request.headers, request.body)
        if parsed.sns is not None:
            await _verify_sns(ctx, runtime.fetcher, parsed, inbound)
            signed = True
    except InvalidSignature as exc:
        raise errors.InvalidSignature(str(exc) or "the signature does not match") from None
    except InvalidPayload as exc:
        raise errors.InvalidPayload(str(exc) or f"not a {provider.name} payload") from None
    if inbound.require_signature and provider.signs and not signed:
        raise errors.Unauthorized(
            "this tenant requires signed deliveries and this one carries no signature",
            code="signature_required",
        )
    return parsed


async def _verify_sns(
    ctx: AppContext, fetcher: SnsHttp, parsed: ParsedPayload, inbound: InboundSettings
) -> None:
    assert parsed.sns is not None
    now = datetime.fromtimestamp(ctx.clock.now(), UTC)
    # The signed Timestamp must be younger than the delivery-id window, so a captured message
    # cannot be replayed once its MessageId has been forgotten.
    max_age = float(ctx.settings.delivery_id_ttl_seconds)
    topics = list(inbound.sns_topic_arns) or None
    if parsed.sns.must_confirm:
        # Verifies first: the SubscribeURL is never fetched for a forged or foreign envelope.
        await confirm_subscription(
            parsed.sns.envelope, fetcher, topics, now=now, max_age_seconds=max_age
        )
    else:
        await verify_sns(parsed.sns.envelope, fetcher, topics, now=now, max_age_seconds=max_age)


async def store_alerts(
    ctx: AppContext,
    tenant_id: str,
    provider: str,
    parsed: ParsedPayload,
    now_ms: int,
) -> bytes:
    """Store a delivery (batched with concurrent ones, see ingest/batch.py); returns the 202
    body once committed (the first one, for a repeated delivery id)."""
    stored = await inbound_runtime(ctx).batcher.submit(
        Delivery(tenant_id=tenant_id, provider=provider, parsed=parsed, now_ms=now_ms)
    )
    for outcome in stored.outcomes:
        INBOUND_ALERTS.labels(provider, outcome).inc()
    return stored.body

"""Webhook endpoints (docs/reference.md §5.1): subscriptions, deliveries, retry/recover/replay.

Thin: each route opens the one transaction (or read), calls `webhook.service`, and after the
commit drops this process's cached subscriptions and wakes the delivery workers. Admins write;
admins, members and `events:read` keys read.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from causeflow.api.deps import Admin, Ctx, Reader, tenant_of
from causeflow.api.pagination import PageParams, page, page_params
from causeflow.api.query import comma_list, query_time
from causeflow.api.routing import JsonRoute
from causeflow.clock import parse_rfc3339
from causeflow.context import AppContext
from causeflow.db.engine import Tx
from causeflow.errors import ValidationFailed
from causeflow.webhook import rules, service
from causeflow.webhook.dispatcher import wake_deliveries
from causeflow.webhook.repository import DeliveryQuery
from causeflow.webhook.schemas import (
    DeliveryDetail,
    DeliveryPage,
    DeliveryRead,
    DeliveryStatus,
    DeliveryWindow,
    MessagePage,
    ScheduledCount,
    SecretRotate,
    SecretRotated,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPage,
    SubscriptionRead,
    SubscriptionStats,
    SubscriptionUpdate,
    TestDeliveryRequest,
)
from causeflow.webhook.ssrf import parse_allow_cidrs
from causeflow.webhook.subscriptions import subscription_cache

router = APIRouter(tags=["webhooks"], route_class=JsonRoute)
SUBS = "/v1/webhook-subscriptions"


def _destination(ctx: AppContext) -> service.Destination:
    return service.Destination(
        allow_http=ctx.settings.webhook_allow_http,
        allow=parse_allow_cidrs(ctx.settings.webhook_allow_cidrs),
    )


def _changed(ctx: AppContext, tx: Tx, tenant_id: str, subscription_id: str) -> None:
    cache = subscription_cache(ctx)
    tx.after_commit(lambda: cache.invalidate(subscription_id, tenant_id))


def _wake_workers(ctx: AppContext, tx: Tx) -> None:
    tx.after_commit(lambda: wake_deliveries(ctx))


def _delivery_cursor(params: PageParams) -> tuple[int, str] | None:
    key = params.after_key(int, str)
    return (key[0], key[1]) if key is not None else None


@router.post(SUBS, status_code=201, response_model=SubscriptionCreated)
async def create_subscription(
    body: SubscriptionCreate, ctx: Ctx, principal: Admin
) -> dict[str, Any]:
    tenant_id = tenant_of(principal)
    limits = await ctx.tenant_limits(tenant_id)
    async with ctx.db.transaction() as tx:
        view, secret = await service.create_subscription(
            tx,
            tenant_id,
            body,
            box=ctx.keys.box,
            destination=_destination(ctx),
            max_per_tenant=limits.max_subscriptions,
            now_ms=ctx.clock.now_ms(),
        )
        _changed(ctx, tx, tenant_id, view["id"])
    return {**view, "secret": secret}


@router.get(SUBS, response_model=SubscriptionPage)
async def list_subscriptions(
    ctx: Ctx, principal: Reader, params: PageParams = Depends(page_params)
) -> dict[str, Any]:
    after = params.after_key(str)
    async with ctx.db.read() as conn:
        items = await service.list_subscriptions(
            conn,
            tenant_of(principal),
            ctx.keys.box,
            after_id=after[0] if after else None,
            limit=params.limit + 1,
        )
    return page(items, params.limit, lambda s: [s["id"]])


@router.get(SUBS + "/{subscription_id}", response_model=SubscriptionRead)
async def get_subscription(subscription_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return await service.get_subscription(
            conn, tenant_of(principal), subscription_id, ctx.keys.box
        )


@router.patch(SUBS + "/{subscription_id}", response_model=SubscriptionRead)
async def update_subscription(
    subscription_id: str, body: SubscriptionUpdate, ctx: Ctx, principal: Admin
) -> dict[str, Any]:
    tenant_id = tenant_of(principal)
    async with ctx.db.transaction() as tx:
        view = await service.update_subscription(
            tx,
            tenant_id,
            subscription_id,
            body.model_dump(exclude_unset=True),
            box=ctx.keys.box,
            destination=_destination(ctx),
            now_ms=ctx.clock.now_ms(),
        )
        _changed(ctx, tx, tenant_id, subscription_id)
    return view


@router.delete(SUBS + "/{subscription_id}", status_code=204)
async def delete_subscription(subscription_id: str, ctx: Ctx, principal: Admin) -> Response:
    tenant_id = tenant_of(principal)
    async with ctx.db.transaction() as tx:
        await service.delete_subscription(tx, tenant_id, subscription_id, ctx.clock.now_ms())
        _changed(ctx, tx, tenant_id, subscription_id)
    return Response(status_code=204)


@router.post(SUBS + "/{subscription_id}/rotate-secret", response_model=SecretRotated)
async def rotate_secret(
    subscription_id: str, ctx: Ctx, principal: Admin, body: SecretRotate | None = None
) -> dict[str, Any]:
    tenant_id = tenant_of(principal)
    async with ctx.db.transaction() as tx:
        view = await service.rotate_secret(
            tx,
            tenant_id,
            subscription_id,
            body.secret if body else None,
            box=ctx.keys.box,
            overlap_seconds=ctx.settings.webhook_rotation_overlap_seconds,
            now_ms=ctx.clock.now_ms(),
        )
        _changed(ctx, tx, tenant_id, subscription_id)
    return view


@router.post(SUBS + "/{subscription_id}/test", status_code=202, response_model=DeliveryRead)
async def send_test(
    subscription_id: str, ctx: Ctx, principal: Admin, body: TestDeliveryRequest | None = None
) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        view = await service.send_test(
            tx,
            tenant_of(principal),
            subscription_id,
            body.event if body else TestDeliveryRequest().event,
            now_ms=ctx.clock.now_ms(),
        )
        _wake_workers(ctx, tx)
    return view


async def _delivery_page(
    ctx: AppContext, tenant_id: str, query: DeliveryQuery, params: PageParams
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        items = await service.list_deliveries(
            conn, tenant_id, query, before=_delivery_cursor(params), limit=params.limit + 1
        )
    return page(items, params.limit, lambda d: [parse_rfc3339(d["createdAt"]), d["id"]])


@router.get(SUBS + "/{subscription_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    subscription_id: str,
    ctx: Ctx,
    principal: Reader,
    params: PageParams = Depends(page_params),
    status: Annotated[DeliveryStatus | None, Query()] = None,
    event: Annotated[str | None, Query(max_length=2000, description="comma-separated")] = None,
) -> dict[str, Any]:
    query = DeliveryQuery(
        subscription_id=subscription_id, status=status, event_types=comma_list(event)
    )
    return await _delivery_page(ctx, tenant_of(principal), query, params)


@router.get(SUBS + "/{subscription_id}/messages", response_model=MessagePage)
async def list_messages(
    subscription_id: str,
    ctx: Ctx,
    principal: Reader,
    params: PageParams = Depends(page_params),
    afterSequence: Annotated[  # noqa: N803
        int, Query(ge=0, le=2**62, description="only the matches after this sequence number")
    ] = 0,
) -> dict[str, Any]:
    """The events the subscription matched, in sequence order, with their delivery state: what
    a receiver that saw a gap in X-CauseFlow-Sequence fetches. `cursor` continues a page."""
    key = params.after_key(int)
    after = key[0] if key is not None else afterSequence
    async with ctx.db.read() as conn:
        items = await service.messages(
            conn, tenant_of(principal), subscription_id, after=after, limit=params.limit + 1
        )
    return page(items, params.limit, lambda m: [m["sequence"]])


@router.get(SUBS + "/{subscription_id}/stats", response_model=SubscriptionStats)
async def subscription_stats(subscription_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    """The endpoint's health: the last hour and day, the backlog, the failure state."""
    async with ctx.db.read() as conn:
        return await service.subscription_stats(
            conn,
            tenant_of(principal),
            subscription_id,
            now_ms=ctx.clock.now_ms(),
            disable_after_ms=ctx.settings.webhook_disable_after_seconds * 1000,
        )


@router.get("/v1/deliveries", response_model=DeliveryPage)
async def search_deliveries(
    ctx: Ctx,
    principal: Reader,
    params: PageParams = Depends(page_params),
    eventId: Annotated[str | None, Query(max_length=64)] = None,  # noqa: N803
    incidentId: Annotated[str | None, Query(max_length=64)] = None,  # noqa: N803
    subscriptionId: Annotated[str | None, Query(max_length=64)] = None,  # noqa: N803
    status: Annotated[DeliveryStatus | None, Query()] = None,
    event: Annotated[str | None, Query(max_length=2000, description="comma-separated")] = None,
    since: Annotated[str | None, Query(max_length=64, description="RFC 3339 time")] = None,
    until: Annotated[str | None, Query(max_length=64, description="RFC 3339 time")] = None,
) -> dict[str, Any]:
    """Where did an event go: the tenant's deliveries across subscriptions, newest first."""
    since_ms, until_ms = query_time("since", since), query_time("until", until)
    if since_ms is not None and until_ms is not None and until_ms < since_ms:
        raise ValidationFailed.at("query.until", "until is before since")
    query = DeliveryQuery(
        subscription_id=subscriptionId,
        event_id=eventId,
        incident_id=incidentId,
        status=status,
        event_types=comma_list(event),
        since_ms=since_ms,
        until_ms=until_ms,
    )
    return await _delivery_page(ctx, tenant_of(principal), query, params)


@router.get("/v1/deliveries/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(delivery_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return await service.get_delivery(conn, tenant_of(principal), delivery_id)


@router.post("/v1/deliveries/{delivery_id}/retry", status_code=202, response_model=DeliveryRead)
async def retry_delivery(delivery_id: str, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        view = await service.retry_delivery(
            tx, tenant_of(principal), delivery_id, ctx.clock.now_ms()
        )
        _wake_workers(ctx, tx)
    return view


def _selection(ctx: AppContext, body: DeliveryWindow, now: int) -> rules.Selection:
    return rules.parse_selection(
        body.since,
        body.until,
        body.eventTypes,
        body.incidentId,
        now,
        max_ms=ctx.settings.webhook_recover_window_seconds * 1000,
    )


@router.post(SUBS + "/{subscription_id}/recover", status_code=202, response_model=ScheduledCount)
async def recover(
    subscription_id: str, body: DeliveryWindow, ctx: Ctx, principal: Admin
) -> dict[str, Any]:
    now = ctx.clock.now_ms()
    selection = _selection(ctx, body, now)
    async with ctx.db.transaction() as tx:
        count = await service.recover(tx, tenant_of(principal), subscription_id, selection, now)
        _wake_workers(ctx, tx)
    return {"scheduled": count}


@router.post(SUBS + "/{subscription_id}/replay", status_code=202, response_model=ScheduledCount)
async def replay(
    subscription_id: str, body: DeliveryWindow, ctx: Ctx, principal: Admin
) -> dict[str, Any]:
    now = ctx.clock.now_ms()
    selection = _selection(ctx, body, now)
    async with ctx.db.transaction() as tx:
        count = await service.replay(
            tx, tenant_of(principal), subscription_id, selection, box=ctx.keys.box, now_ms=now
        )
        _wake_workers(ctx, tx)
    return {"scheduled": count}

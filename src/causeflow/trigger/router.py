"""Trigger endpoints: create and delete (admins), read (admin/member, events:read), and the
incoming events a trigger receives (admins or `events:publish` keys)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from causeflow.api.deps import Admin, AdminOrProducer, Ctx, Reader, tenant_of
from causeflow.api.pagination import PageParams, page, page_params
from causeflow.api.routing import JsonRoute
from causeflow.ingest.batch import FingerprintTaken
from causeflow.jsonutil import json_body
from causeflow.trigger import service
from causeflow.trigger.schemas import TriggerCreate, TriggerPage, TriggerRead

router = APIRouter(tags=["triggers"], route_class=JsonRoute)


@router.post("/v1/triggers", status_code=201, response_model=TriggerRead)
async def create_trigger(body: TriggerCreate, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await service.create_trigger(
            tx,
            tenant_of(principal),
            slug=body.slug,
            provider=body.provider,
            action=body.action,
            config=body.config,
            box=ctx.keys.box,
            now_ms=ctx.clock.now_ms(),
        )


@router.get("/v1/triggers", response_model=TriggerPage)
async def list_triggers(
    ctx: Ctx, principal: Reader, params: PageParams = Depends(page_params)
) -> dict[str, Any]:
    after = params.after_key(str)
    async with ctx.db.read() as conn:
        rows = await service.list_triggers(
            conn, tenant_of(principal), after_id=after[0] if after else None, limit=params.limit + 1
        )
    return page(rows, params.limit, lambda r: [r["id"]])


@router.get("/v1/triggers/{trigger_id}", response_model=TriggerRead)
async def get_trigger(trigger_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return await service.get_trigger(conn, tenant_of(principal), trigger_id)


@router.delete("/v1/triggers/{trigger_id}", status_code=204)
async def delete_trigger(trigger_id: str, ctx: Ctx, principal: Admin) -> Response:
    async with ctx.db.transaction() as tx:
        await service.delete_trigger(
            tx, tenant_of(principal), trigger_id, now_ms=ctx.clock.now_ms()
        )
    return Response(status_code=204)


@router.post(
    "/v1/triggers/{trigger_id}/events",
    status_code=201,
    responses={201: {"description": "the trigger.event_received event's envelope"}},
)
async def receive_trigger_event(
    trigger_id: str,
    ctx: Ctx,
    principal: AdminOrProducer,
    request: Request,
    payload: Annotated[dict[str, Any], Body(description="the incoming event, any JSON object")],
) -> Response:
    # `payload` checks that the body is a JSON object; the body itself is kept as sent, unless
    # it is not UTF-8 (JSON may come as UTF-16/32), then as the standard json module writes it.
    try:
        raw = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raw = json.dumps(payload, ensure_ascii=False)
    for attempt in range(3):
        try:
            async with ctx.db.transaction() as tx:
                stored = await service.receive_event(
                    tx,
                    tenant_of(principal),
                    trigger_id,
                    payload=raw,
                    document=payload,
                    box=ctx.keys.box,
                    ttl_seconds=ctx.settings.delivery_id_ttl_seconds,
                    now_ms=ctx.clock.now_ms(),
                )
            break
        except FingerprintTaken:
            # An alert key claimed by a writer that did not hold the tenant's log head (none
            # does today): the whole transaction is applied again, like an inbound batch.
            if attempt == 2:
                raise
    return Response(json_body(stored.envelope), status_code=201, media_type="application/json")

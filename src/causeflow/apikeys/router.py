"""API key endpoints: `/v1/api-keys` (tenant admins). A key is shown once, at creation."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from causeflow.api.deps import Admin, Ctx, tenant_of
from causeflow.api.fields import NO_NUL
from causeflow.api.pagination import PageParams, page, page_params
from causeflow.api.routing import JsonRoute
from causeflow.auth import apikeys
from causeflow.clock import ms_to_rfc3339
from causeflow.errors import NotFound

router = APIRouter(tags=["api-keys"], route_class=JsonRoute)
Scope = Literal["admin", "events:publish", "events:read", "alerts:ingest"]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    scopes: list[Scope] = Field(min_length=1, max_length=4)


class ApiKeyRead(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    createdAt: str


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="the key itself; shown only in this response")
    webhookSecret: str | None = Field(
        default=None, description="for alerts:ingest keys: the inbound signing secret, shown once"
    )


class ApiKeyPage(BaseModel):
    items: list[ApiKeyRead]
    cursor: str | None
    count: int


def _view(record: apikeys.KeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "scopes": list(record.scopes),
        "createdAt": ms_to_rfc3339(record.created_at),
    }


@router.post("/v1/api-keys", status_code=201, response_model=ApiKeyCreated)
async def create_api_key(body: ApiKeyCreate, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    from causeflow_sdk.signatures import generate_secret

    secret = generate_secret() if "alerts:ingest" in body.scopes else None
    async with ctx.db.transaction() as tx:
        record, key = await apikeys.create_key(
            tx,
            tenant_id=tenant_of(principal),
            name=body.name,
            scopes=list(body.scopes),
            now_ms=ctx.clock.now_ms(),
            box=ctx.keys.box,
            webhook_secret=secret,
            max_keys=ctx.settings.max_api_keys_per_tenant,
        )
    return {**_view(record), "key": key, "webhookSecret": secret}


@router.get("/v1/api-keys", response_model=ApiKeyPage)
async def list_api_keys(
    ctx: Ctx, principal: Admin, params: PageParams = Depends(page_params)
) -> dict[str, Any]:
    after = params.after_key(str)
    async with ctx.db.read() as conn:
        rows = await apikeys.list_keys(
            conn, tenant_of(principal), after_id=after[0] if after else None, limit=params.limit + 1
        )
    return page([_view(r) for r in rows], params.limit, lambda k: [k["id"]])


@router.get("/v1/api-keys/{key_id}", response_model=ApiKeyRead)
async def get_api_key(key_id: str, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        record = await apikeys.get_key(conn, tenant_of(principal), key_id)
    if record is None:
        raise NotFound("no such API key")
    return _view(record)


@router.delete("/v1/api-keys/{key_id}", status_code=204)
async def revoke_api_key(key_id: str, ctx: Ctx, principal: Admin) -> Response:
    async with ctx.db.transaction() as tx:
        revoked = await apikeys.revoke_key(tx, tenant_of(principal), key_id, ctx.clock.now_ms())
    if not revoked:
        raise NotFound("no such API key")
    ctx.key_cache.forget(key_id)
    return Response(status_code=204)

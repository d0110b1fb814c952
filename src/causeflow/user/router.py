"""User endpoints: `/v1/users` (tenant admins)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from causeflow.api.deps import Admin, Ctx, tenant_of
from causeflow.api.fields import NO_NUL
from causeflow.api.pagination import PageParams, page, page_params
from causeflow.api.routing import JsonRoute
from causeflow.user import service

router = APIRouter(tags=["users"], route_class=JsonRoute)
Role = Literal["admin", "member"]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")
    name: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    role: Role = "member"


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    role: Role | None = None


class UserRead(BaseModel):
    id: str
    email: str
    name: str | None
    role: str
    createdAt: str
    updatedAt: str


class UserPage(BaseModel):
    items: list[UserRead]
    cursor: str | None
    count: int


@router.post("/v1/users", status_code=201, response_model=UserRead)
async def create_user(body: UserCreate, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await service.create_user(
            tx,
            tenant_of(principal),
            email=body.email,
            name=body.name,
            role=body.role,
            now_ms=ctx.clock.now_ms(),
        )


@router.get("/v1/users", response_model=UserPage)
async def list_users(
    ctx: Ctx, principal: Admin, params: PageParams = Depends(page_params)
) -> dict[str, Any]:
    after = params.after_key(str)
    async with ctx.db.read() as conn:
        rows = await service.list_users(
            conn, tenant_of(principal), after_id=after[0] if after else None, limit=params.limit + 1
        )
    return page(rows, params.limit, lambda u: [u["id"]])


@router.get("/v1/users/{user_id}", response_model=UserRead)
async def get_user(user_id: str, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return await service.get_user(conn, tenant_of(principal), user_id)


@router.patch("/v1/users/{user_id}", response_model=UserRead)
async def update_user(user_id: str, body: UserUpdate, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await service.update_user(
            tx,
            tenant_of(principal),
            user_id,
            name=body.name,
            role=body.role,
            now_ms=ctx.clock.now_ms(),
        )


@router.delete("/v1/users/{user_id}", status_code=204)
async def delete_user(user_id: str, ctx: Ctx, principal: Admin) -> Response:
    async with ctx.db.transaction() as tx:
        await service.delete_user(tx, tenant_of(principal), user_id, ctx.clock.now_ms())
    return Response(status_code=204)

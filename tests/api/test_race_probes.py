"""Races an outside client can provoke: edits of a subscription while events wait, repeated
requests with one Idempotency-Key, and what each must still guarantee."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from causeflow.event.tables import events as events_table
from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant
from tests.support.webhook import SUBS, create_sub

pytestmark = pytest.mark.integration


async def test_concurrent_retries_with_one_idempotency_key_append_one_event(
    service: Service, tenant: Tenant
) -> None:
    body = {"event": "incident.created", "data": sample_data("incident.created")}
    headers = {**tenant.admin_headers, "Idempotency-Key": "k-1"}

    async def post() -> int:
        resp = await service.client.post("/v1/events", headers=headers, json=body)
        return resp.status_code

    codes = await asyncio.gather(*(post() for _ in range(12)))
    assert all(c in (201, 409) for c in codes), codes
    async with service.ctx.db.read() as conn:
        n = (
            await conn.execute(
                select(func.count()).where(
                    events_table.c.tenant_id == tenant.id,
                    events_table.c.type == "incident.created",
                )
            )
        ).scalar_one()
    assert n == 1, codes


async def test_concurrent_secret_rotations_keep_every_secret_they_returned(
    service: Service, tenant: Tenant
) -> None:
    """Two rotations at once: each answer says its secret now signs. Whichever commits last,
    the one before it must still sign during the overlap (it is the previous secret), never a
    secret that both rotations replaced."""
    from causeflow.webhook.subscriptions import from_row
    from causeflow.webhook.tables import subscriptions

    sub = await create_sub(service, tenant)
    url = f"{SUBS}/{sub['id']}/rotate-secret"
    for _ in range(5):

        async def rotate() -> str:
            resp = await service.client.post(url, headers=tenant.admin_headers)
            assert resp.status_code == 200, resp.text
            return str(resp.json()["secret"])

        returned = set(await asyncio.gather(rotate(), rotate()))
        async with service.ctx.db.read() as conn:
            row = (
                await conn.execute(select(subscriptions).where(subscriptions.c.id == sub["id"]))
            ).one()
        stored = from_row(row, service.ctx.keys.box)
        signing = {stored.secret, stored.previous_secret}
        assert returned <= signing, "a secret handed to the caller no longer signs"

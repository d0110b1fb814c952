"""Tenants without subscriptions: the dispatcher follows their log with one round per quiet
window (`QUIET_SECONDS`) however many commits come, skips nothing, and a subscription that
the process's cached set does not know yet still gets every event after it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from causeflow.event.log import head_position
from causeflow.webhook import dispatcher as dispatcher_module
from causeflow.webhook.dispatcher import QUIET_SECONDS
from causeflow.webhook.tables import dispatch_cursors
from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant, make_settings, running_service
from tests.support.webhook import append, create_sub, delivery_rows

pytestmark = pytest.mark.integration

EVENT = {"event": "incident.created", "data": sample_data("incident.created")}


@pytest.fixture
async def served(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    """The dispatcher running on its own (worker role in process), no slow poll to help."""
    settings = make_settings(tmp_path, database_url, run_workers=True, webhook_poll_seconds=30)
    async with running_service(settings) as svc:
        yield svc


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Dispatch rounds per tenant (the real rounds, counted on the way in)."""
    counted: Counter[str] = Counter()
    real = dispatcher_module.dispatch_batch

    async def counting(ctx: Any, cache: Any, tenant_id: str, limit: int = 256) -> Any:
        counted[tenant_id] += 1
        return await real(ctx, cache, tenant_id, limit)

    monkeypatch.setattr(dispatcher_module, "dispatch_batch", counting)
    return counted


async def cursor_and_head(svc: Service, tenant: Tenant) -> tuple[int | None, int]:
    async with svc.ctx.db.read() as conn:
        stmt = select(dispatch_cursors.c.position).where(dispatch_cursors.c.tenant_id == tenant.id)
        cursor = (await conn.execute(stmt)).scalar()
        return cursor, await head_position(conn, tenant.id)


async def caught_up(svc: Service, tenant: Tenant, within: float) -> float:
    """Seconds until the tenant's cursor stands at its head (fails after `within`)."""
    started = time.monotonic()
    while True:
        cursor, head = await cursor_and_head(svc, tenant)
        if cursor == head:
            return time.monotonic() - started
        assert time.monotonic() - started < within, (cursor, head)
        await asyncio.sleep(0.005)


async def publish(svc: Service, tenant: Tenant) -> str:
    resp = await svc.client.post("/v1/events", headers=tenant.key_headers, json=EVENT)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def test_commits_within_a_quiet_window_share_one_round(
    served: Service, rounds: Counter[str]
) -> None:
    tenant = await served.tenant("quiet")
    await publish(served, tenant)
    await caught_up(served, tenant, within=5)  # the first round: its set is read, and empty
    rounds.clear()
    started = time.monotonic()
    for _ in range(5):
        await asyncio.gather(*(publish(served, tenant) for _ in range(8)))
    await caught_up(served, tenant, within=5)
    spent = time.monotonic() - started
    # each of the 5 bursts commits on its own; without the window each would need a round
    assert rounds[tenant.id] <= spent / QUIET_SECONDS + 2, (rounds[tenant.id], spent)
    cursor, head = await cursor_and_head(served, tenant)
    assert cursor == head and head >= 41


async def test_the_cursor_follows_the_head_within_about_a_window(served: Service) -> None:
    tenant = await served.tenant("quiet")
    for _ in range(3):
        await publish(served, tenant)
        # never left behind: at most a window (and a round) after the last commit
        assert await caught_up(served, tenant, within=QUIET_SECONDS + 2) >= 0


async def test_a_subscription_the_cached_set_missed_gets_every_event_after_it(
    served: Service,
) -> None:
    tenant = await served.tenant("quiet")
    before = await publish(served, tenant)
    await caught_up(served, tenant, within=5)
    assert served.ctx.subscription_cache.known_without(tenant.id)
    sub = await create_sub(served, tenant)
    # what a process that did not make the subscription still holds: the set read before it
    served.ctx.subscription_cache._decoded[tenant.id] = {}
    after = [await publish(served, tenant) for _ in range(3)]
    deadline = time.monotonic() + 5
    while len(rows := await delivery_rows(served, tenant, subscription_id=sub["id"])) < 3:
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.01)
    assert [r.event_id for r in rows] == after
    assert before not in {r.event_id for r in rows}
    assert not served.ctx.subscription_cache.known_without(tenant.id)


async def test_a_subscription_made_here_is_dispatched_without_waiting(
    served: Service, rounds: Counter[str]
) -> None:
    tenant = await served.tenant("quiet")
    await publish(served, tenant)
    await caught_up(served, tenant, within=5)
    sub = await create_sub(served, tenant)  # drops the cached set at its commit
    assert not served.ctx.subscription_cache.known_without(tenant.id)
    event_id = await publish(served, tenant)
    deadline = time.monotonic() + 5
    while not (rows := await delivery_rows(served, tenant, subscription_id=sub["id"])):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.002)
    assert [r.event_id for r in rows] == [event_id]


async def test_other_tenants_commits_do_not_stretch_the_window(served: Service) -> None:
    quiet = await served.tenant("quiet")
    busy = await served.tenant("busy")
    await create_sub(served, busy)
    waits: list[float] = []
    for _ in range(3):  # the shortest of three: a loaded machine's stalls only lengthen one
        await append(served, quiet)
        await caught_up(served, quiet, within=5)  # a round ran just now: the next is held back
        await append(served, quiet)
        held_from = time.monotonic()
        await asyncio.sleep(QUIET_SECONDS * 0.7)
        await append(served, busy)  # wakes the dispatcher late in the quiet tenant's window
        await caught_up(served, quiet, within=5)
        waits.append(time.monotonic() - held_from)
    # the window ends where it began (by 1.0), not a whole window after the wake-up (1.7)
    assert min(waits) < QUIET_SECONDS * 1.35, waits


async def test_a_tenant_held_back_then_changed_in_the_same_drain_runs_now(served: Service) -> None:
    """Held back early in a drain, then brought back by a wake-up after a subscription made
    here dropped its cached set: its round runs at once and it is held back no more (the
    loop's wait reads only tenants still held back)."""
    tenant = await served.tenant("quiet")
    await publish(served, tenant)
    await caught_up(served, tenant, within=5)
    dispatcher = served.ctx.dispatcher
    assert isinstance(dispatcher, dispatcher_module.Dispatcher)
    dispatcher._quiet_round[tenant.id] = asyncio.get_running_loop().time()  # a round just ran
    assert dispatcher._later(tenant.id)  # within its window: held back
    served.ctx.subscription_cache.invalidate(tenant_id=tenant.id)
    assert not dispatcher._later(tenant.id)
    assert tenant.id not in dispatcher._deferred
    await publish(served, tenant)
    await caught_up(served, tenant, within=5)  # and the loop goes on

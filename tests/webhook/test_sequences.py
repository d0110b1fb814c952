"""Sequence numbers: each subscription's deliveries are its 1st, 2nd, ... match, gap-free in
log order, whatever PATCHes of its matching rules come in between, and they reach the
receiver as headers.

The model: the rules in force at each publish (the order of the calls is the commit order)
decide whether that event is the subscription's next match; the k-th match carries k.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from causeflow.clock import ms_to_rfc3339
from causeflow.webhook.engine import start_delivery
from causeflow.webhook.tables import subscription_sequences
from tests.support.inproc import Service, Tenant
from tests.support.receiver import Receiver
from tests.support.webhook import SUBS, create_sub, delivery_rows, dispatch_pending
from tests.webhook.test_subscription_changes import patch, publish

pytestmark = pytest.mark.integration

EVENT_SETS = [["*"], ["incident.created"], ["remediation.proposed"]]
FILTERS: list[dict[str, Any] | None] = [None, {"severity": "critical"}, {"severity": "low"}]

_op = st.one_of(
    st.tuples(st.just("publish"), st.sampled_from(["critical", "low", "remediation"])),
    st.tuples(st.just("events"), st.integers(0, len(EVENT_SETS) - 1)),
    st.tuples(st.just("filter"), st.integers(0, len(FILTERS) - 1)),
    st.tuples(st.just("enabled"), st.booleans()),
    st.tuples(st.just("dispatch"), st.just(0)),
)


def _matches(events: list[str], filter_: dict[str, Any] | None, kind: str) -> bool:
    event_type = "remediation.proposed" if kind == "remediation" else "incident.created"
    if events != ["*"] and event_type not in events:
        return False
    if filter_ is None:
        return True
    return event_type == "incident.created" and filter_["severity"] == kind


async def _publish(service: Service, tenant: Tenant, kind: str) -> str:
    if kind == "remediation":
        return await publish(service, tenant, "remediation.proposed")
    return await publish(service, tenant, "incident.created", severity=kind)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_op, min_size=1, max_size=25))
async def test_sequences_count_the_matches_under_the_rules_in_force(
    service: Service, tenant: Tenant, ops: list[tuple[str, Any]]
) -> None:
    sub = await create_sub(service, tenant)  # a fresh counter for each example
    events, filter_, enabled = ["*"], None, True
    expected: list[tuple[str, str]] = []  # (event id, status) of each match, in order
    for op, arg in ops:
        if op == "publish":
            event_id = await _publish(service, tenant, arg)
            if _matches(events, filter_, arg):
                expected.append((event_id, "pending" if enabled else "failed"))
        elif op == "events":
            events = EVENT_SETS[arg]
            await patch(service, tenant, sub["id"], events=events)
        elif op == "filter":
            filter_ = FILTERS[arg]
            await patch(service, tenant, sub["id"], filter=filter_)
        elif op == "enabled":
            enabled = arg
            await patch(service, tenant, sub["id"], enabled=enabled)
        else:
            await dispatch_pending(service.ctx)
    await dispatch_pending(service.ctx)
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    rows.sort(key=lambda r: r.sequence)
    assert [r.event_id for r in rows] == [event_id for event_id, _ in expected]
    # matched while disabled: still numbered, recorded as not sent (one matched while enabled
    # may be too, if it is disabled by the time it is dispatched)
    for row, (_, status) in zip(rows, expected, strict=True):
        assert status == "pending" or row.status == "failed"
    assert [r.sequence for r in rows] == list(range(1, len(expected) + 1))
    # the delete takes the counter with it, and no delivery remains pending
    resp = await service.client.delete(f"{SUBS}/{sub['id']}", headers=tenant.admin_headers)
    assert resp.status_code == 204, resp.text
    async with service.ctx.db.read() as conn:
        stmt = select(subscription_sequences).where(
            subscription_sequences.c.subscription_id == sub["id"]
        )
        assert (await conn.execute(stmt)).first() is None


async def test_the_record_and_the_headers_carry_the_sequence(
    service: Service, tenant: Tenant
) -> None:
    async with Receiver() as receiver:
        sub = await create_sub(service, tenant, url=receiver.url_for("/hook"))
        ids = [await publish(service, tenant, "incident.created") for _ in range(3)]
        test = await service.client.post(f"{SUBS}/{sub['id']}/test", headers=tenant.admin_headers)
        assert test.status_code == 202, test.text
        assert test.json()["sequence"] is None
        await dispatch_pending(service.ctx)
        stop = await start_delivery(service.ctx)
        try:
            requests = await receiver.wait_for(4)
        finally:
            await stop()
    numbered = {
        r.json()["id"]: (
            r.headers.get("X-CauseFlow-Subscription"),
            r.headers.get("X-CauseFlow-Sequence"),
        )
        for r in requests
    }
    assert [numbered[i] for i in ids] == [(sub["id"], str(k)) for k in (1, 2, 3)]
    assert (None, None) in numbered.values()  # the test delivery has neither header
    resp = await service.client.get(
        "/v1/deliveries", params={"subscriptionId": sub["id"]}, headers=tenant.admin_headers
    )
    assert resp.status_code == 200, resp.text
    assert sorted(d["sequence"] or 0 for d in resp.json()["items"]) == [0, 1, 2, 3]


async def test_replay_makes_deliveries_without_a_sequence(service: Service, tenant: Tenant) -> None:
    sub = await create_sub(service, tenant, events=["incident.created"])
    await publish(service, tenant, "incident.created")
    await dispatch_pending(service.ctx)
    resp = await service.client.post(
        f"{SUBS}/{sub['id']}/replay",
        headers=tenant.admin_headers,
        json={"since": ms_to_rfc3339(service.ctx.clock.now_ms() - 3_600_000)},
    )
    assert resp.status_code in (200, 202), resp.text
    await publish(service, tenant, "incident.created")
    await dispatch_pending(service.ctx)
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    assert sorted((r.sequence or 0) for r in rows) == [0, 1, 2]


async def test_take_sequences_continues_each_counter_in_one_batch(
    tmp_path: Path, database_url: str
) -> None:
    """A batch of known and first-time subscriptions (one read, one write of the counters):
    each continues its own count."""
    from causeflow.webhook import repository as repo
    from tests.webhook.delivery_support import TENANT, bare_context

    a, b, c = (f"sub_01JD00000000000000000000{i:02d}" for i in range(3))
    async with bare_context(tmp_path, database_url) as ctx:
        async with ctx.db.transaction() as tx:
            assert await repo.take_sequences(tx, TENANT, {a: 3, b: 1}) == {a: 1, b: 1}
        async with ctx.db.transaction() as tx:
            assert await repo.take_sequences(tx, TENANT, {c: 2, a: 2, b: 5}) == {
                a: 4,
                b: 2,
                c: 1,
            }
        async with ctx.db.read() as conn:
            rows = (await conn.execute(select(subscription_sequences))).all()
        assert {r.subscription_id: r.last for r in rows} == {a: 5, b: 6, c: 2}

"""The queue's SQL on both databases: what is due, leases, hand-backs, and the lease guard
that keeps a worker whose lease was taken over from overwriting the new owner's work."""

from __future__ import annotations

from pathlib import Path

import pytest

from causeflow.webhook import queue
from causeflow.webhook.queue import EXHAUSTED, Outcome

from .delivery_support import (
    add_deliveries,
    add_event,
    add_subscription,
    attempts_of,
    bare_context,
    delivery,
    log_events,
    subscription,
)

pytestmark = pytest.mark.integration


def outcome(msg: str, sub: str, status: str, **kw: object) -> Outcome:
    return Outcome(
        delivery_id=msg,
        tenant_id="ten_01JD0000000000000000000000",
        subscription_id=sub,
        event_id="evt_x",
        status=status,
        now_ms=kw.pop("now_ms", 0),  # type: ignore[arg-type]
        attempted=True,
        status_code=kw.pop("code", 500),  # type: ignore[arg-type]
        last_error="HTTP 500 Internal Server Error",
        attempts=1,
        url="http://127.0.0.1:9/",
        **kw,  # type: ignore[arg-type]
    )


async def test_claims_leases_and_the_guard(tmp_path: Path, database_url: str) -> None:
    async with bare_context(tmp_path, database_url) as ctx:
        db = ctx.db
        sub = await add_subscription(ctx, "http://127.0.0.1:9/")
        msgs = await add_deliveries(ctx, sub, await add_event(ctx), 3)
        now = ctx.clock.now_ms()

        # oldest due first, at most `limit`, each to one owner only
        first = await queue.claim_due(db, owner="a", now_ms=now, lease_ms=60_000, limit=2)
        assert [c.id for c in first] == msgs[:2]
        rest = await queue.claim_due(db, owner="b", now_ms=now, lease_ms=60_000, limit=10)
        assert [c.id for c in rest] == msgs[2:]
        assert await queue.claim_due(db, owner="c", now_ms=now, lease_ms=60_000, limit=10) == []
        assert not await queue.any_due(db, now)

        # a hand-back for later leaves it out of the due set until then
        await queue.record(
            db,
            owner="b",
            now_ms=now,
            outcomes=[],
            releases=[(msgs[2], now + 5000)],
            disable_after_ms=1,
        )
        row = await delivery(ctx, msgs[2])
        assert (row.lease_owner, row.lease_until, row.next_attempt_at) == (None, None, now + 5000)
        assert not await queue.any_due(db, now)
        assert await queue.any_due(db, now + 5000)

        # a's lease runs out and b takes msgs[0] over
        later = now + 60_000
        [taken] = await queue.claim_due(db, owner="b", now_ms=later, lease_ms=60_000, limit=1)
        assert taken.id == msgs[0]

        # a's late outcome: its attempt is history, but it changes neither the delivery
        # nor the subscription, and writes no event
        result = await queue.record(
            db,
            owner="a",
            now_ms=later,
            outcomes=[
                outcome(msgs[0], sub, "failed", effect=EXHAUSTED, now_ms=later),
                outcome(msgs[1], sub, "succeeded", code=200, now_ms=later),
            ],
            disable_after_ms=1,
        )
        assert result.applied == 1  # msgs[1] is still a's
        row = await delivery(ctx, msgs[0])
        assert (row.status, row.lease_owner, row.attempts) == ("pending", "b", 0)
        assert len(await attempts_of(ctx, msgs[0])) == 1
        assert await log_events(ctx, "webhook.delivery_exhausted") == []
        assert (await subscription(ctx, sub)).first_failure_at is None
        row = await delivery(ctx, msgs[1])
        assert (row.status, row.lease_owner, row.attempts, row.last_status_code) == (
            "succeeded",
            None,
            1,
            200,
        )

        # b's own outcome applies, with its effects
        await queue.record(
            db,
            owner="b",
            now_ms=later,
            outcomes=[outcome(msgs[0], sub, "failed", effect=EXHAUSTED, now_ms=later)],
            disable_after_ms=1,
        )
        row = await delivery(ctx, msgs[0])
        assert (row.status, row.lease_owner, row.attempts) == ("failed", None, 1)
        assert len(await log_events(ctx, "webhook.delivery_exhausted")) == 1
        assert (await subscription(ctx, sub)).first_failure_at == later

        # shutdown: every lease of an owner back at once
        [again] = await queue.claim_due(db, owner="c", now_ms=later, lease_ms=60_000, limit=5)
        assert await queue.release_all(db, owner="c") == 1
        assert (await delivery(ctx, again.id)).lease_owner is None

        depth, age = await queue.queue_stats(db, later)
        assert depth == 1 and 60.0 <= age < 61.0  # msgs[2], created about `now`

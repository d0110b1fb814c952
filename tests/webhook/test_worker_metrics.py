"""The queue gauges a worker exports: depth, and the age of the oldest pending delivery (since
it was created), whether it is due now or waits for a retry far ahead."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest

from causeflow import ids
from causeflow.metrics import QUEUE_DEPTH, QUEUE_OLDEST_AGE
from causeflow.webhook.tables import deliveries
from tests.support.clock import FrozenClock

from .delivery_support import TENANT, add_event, add_subscription, bare_context, running_engine

NOW = 1_800_000_000_000
HOUR = 3_600_000


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


@pytest.mark.integration
async def test_the_oldest_pending_gauge_is_the_age_of_the_oldest_delivery(
    tmp_path: Path, database_url: str
) -> None:
    async with bare_context(tmp_path, database_url, clock=FrozenClock(NOW)) as ctx:
        sub = await add_subscription(ctx, "http://127.0.0.1:9/")
        event = await add_event(ctx)
        rows = [
            # created an hour ago, failed once, its retry ten hours ahead: not due, but old
            (NOW - HOUR, NOW + 10 * HOUR, 1),
            # a younger one, waiting for its second retry
            (NOW - HOUR // 2, NOW + 5 * 60_000, 2),
        ]
        async with ctx.db.transaction() as tx:
            await tx.execute(
                deliveries.insert(),
                [
                    {
                        "id": ids.new_id("msg", created),
                        "tenant_id": TENANT,
                        "subscription_id": sub,
                        "event_id": event.id,
                        "event_type": event.type,
                        "status": "pending",
                        "attempts": attempts,
                        "next_attempt_at": due,
                        "manual": False,
                        "created_at": created,
                        "updated_at": NOW,
                    }
                    for created, due, attempts in rows
                ],
            )
        QUEUE_OLDEST_AGE.set(-1)
        QUEUE_DEPTH.set(-1)
        async with running_engine(ctx):
            # the engine refreshes the gauges as soon as it starts, then every few seconds
            for _ in range(500):
                if gauge("causeflow_delivery_queue_oldest_age_seconds") != -1:
                    break
                await asyncio.sleep(0.01)
        assert gauge("causeflow_delivery_queue_oldest_age_seconds") == 3600.0
        assert gauge("causeflow_delivery_queue_depth") == 2


@pytest.mark.unit
def test_the_gauge_says_what_it_measures() -> None:
    text = generate_latest(REGISTRY).decode()
    [help_line] = [
        line
        for line in text.splitlines()
        if line.startswith("# HELP causeflow_delivery_queue_oldest_age_seconds ")
    ]
    assert "created" in help_line and "due" not in help_line


@pytest.mark.integration
@pytest.mark.parametrize("per_subscription", [False, True])
async def test_per_subscription_series_only_when_asked(
    tmp_path: Path, database_url: str, per_subscription: bool
) -> None:
    """Attempts by subscription and outcome, and their latency, appear on /metrics only with
    CAUSEFLOW_METRICS_PER_SUBSCRIPTION (one label value per subscription)."""
    from tests.support.receiver import Fail, Receiver

    from .delivery_support import add_deliveries, wait_until_settled

    async with (
        Receiver() as receiver,
        bare_context(tmp_path, database_url, metrics_per_subscription=per_subscription) as ctx,
    ):
        receiver.set_behavior("/hook", Fail(500, times=1))
        sub = await add_subscription(ctx, receiver.url_for("/hook"))
        event = await add_event(ctx)
        ids_ = await add_deliveries(ctx, sub, event)
        async with running_engine(ctx):
            [row] = await wait_until_settled(ctx, ids_)
        assert row.status == "succeeded" and row.attempts == 2
    text = generate_latest(REGISTRY).decode()
    ok = f'causeflow_subscription_attempts_total{{outcome="succeeded",subscription_id="{sub}"}}'
    failed = f'causeflow_subscription_attempts_total{{outcome="failed",subscription_id="{sub}"}}'
    latency = f'causeflow_subscription_attempt_seconds_count{{subscription_id="{sub}"}}'
    if per_subscription:
        assert f"{ok} 1.0" in text and f"{failed} 1.0" in text and f"{latency} 2.0" in text
    else:
        assert sub not in text

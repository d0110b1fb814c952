"""The outcome recorder writes many outcomes per transaction: an outcome waits for company (up
to `FLUSH_ENOUGH` of them, at most `FLUSH_LINGER_SECONDS`), but an urgent one (an ordered
lane waits for it), a full batch or a hand-back ends the wait sooner. Real database; the
attempts written are counted in it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from causeflow import ids
from causeflow.context import AppContext
from causeflow.webhook import recorder as recorder_module
from causeflow.webhook.queue import Outcome
from causeflow.webhook.recorder import Recorder
from causeflow.webhook.subscriptions import subscription_cache
from causeflow.webhook.tables import attempts

from .delivery_support import TENANT, bare_context

pytestmark = pytest.mark.integration

LONG = 30.0  # a linger no test waits out


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[AppContext]:
    async with bare_context(tmp_path) as ctx:
        yield ctx


@pytest.fixture
async def recorder(ctx: AppContext) -> AsyncIterator[Recorder]:
    rec = Recorder(
        ctx.db,
        ctx.clock,
        owner="me",
        disable_after_ms=10**9,
        subs=subscription_cache(ctx),
        wake_in=lambda _seconds: None,
    )
    rec.start()
    yield rec
    await rec.close(5.0)


def outcome(ctx: AppContext) -> Outcome:
    now = ctx.clock.now_ms()
    return Outcome(
        delivery_id=ids.new_id("msg", now),
        tenant_id=TENANT,
        subscription_id="sub_01JD0000000000000000000000",
        event_id="evt_x",
        status="succeeded",
        now_ms=now,
        attempted=True,
        status_code=204,
        latency_ms=1,
        response_body="",
        attempts=1,
    )


async def written(ctx: AppContext) -> int:
    async with ctx.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(attempts))).scalar_one())


async def wait_written(ctx: AppContext, count: int, seconds: float = 10.0) -> float:
    """Seconds until `count` attempts are in the database."""
    started = time.monotonic()
    while await written(ctx) < count:
        assert time.monotonic() - started < seconds, f"{await written(ctx)} of {count} written"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_a_few_outcomes_wait_for_company_then_go_in_one_write(
    ctx: AppContext, recorder: Recorder
) -> None:
    for _ in range(10):
        recorder.push(outcome(ctx))
    await asyncio.sleep(0.04)
    assert await written(ctx) == 0  # still waiting for company (FLUSH_LINGER_SECONDS: 0.1)
    await wait_written(ctx, 10)


async def test_a_full_batch_ends_the_wait(
    ctx: AppContext, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_module, "FLUSH_LINGER_SECONDS", LONG)
    recorder.push(outcome(ctx))
    await asyncio.sleep(0.05)  # the recorder lingers now
    for _ in range(recorder_module.FLUSH_ENOUGH - 1):
        recorder.push(outcome(ctx))
    assert await wait_written(ctx, recorder_module.FLUSH_ENOUGH) < LONG / 3


async def test_an_urgent_outcome_ends_the_wait(
    ctx: AppContext, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_module, "FLUSH_LINGER_SECONDS", LONG)
    recorder.push(outcome(ctx))
    await asyncio.sleep(0.05)
    recorder.push(outcome(ctx), urgent=True)
    assert await wait_written(ctx, 2) < LONG / 3


async def test_a_hand_back_shortens_the_wait(
    ctx: AppContext, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_module, "FLUSH_LINGER_SECONDS", LONG)
    recorder.push(outcome(ctx))
    await asyncio.sleep(0.05)
    recorder.release(ids.new_id("msg"), None)
    assert await wait_written(ctx, 1) < LONG / 3


async def test_closing_writes_what_waits(ctx: AppContext, recorder: Recorder) -> None:
    for _ in range(3):
        recorder.push(outcome(ctx))
    await recorder.close(5.0)
    assert await written(ctx) == 3


async def test_a_lazy_outcome_is_written_within_the_run_linger(
    ctx: AppContext, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The middle of an ordered run is written within `RUN_LINGER_SECONDS` (its lease is
    running), whatever the linger for company: its time being up ends the wait."""
    monkeypatch.setattr(recorder_module, "FLUSH_LINGER_SECONDS", LONG)
    recorder.push(outcome(ctx), lazy=True)  # the flush loop is idle: only the timer wakes it
    assert await wait_written(ctx, 1) < LONG / 3


async def test_a_lazy_outcome_ends_a_linger_already_under_way(
    ctx: AppContext, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_module, "FLUSH_LINGER_SECONDS", LONG)
    recorder.push(outcome(ctx))
    await asyncio.sleep(0.05)  # the recorder lingers now
    recorder.push(outcome(ctx), lazy=True)
    assert await wait_written(ctx, 2) < LONG / 3

"""The outcome recorder writes many outcomes per transaction: an outcome waits for company (up
to `FLUSH_ENOUGH` of them, at most `FLUSH_LINGER_SECONDS`), but an urgent one (an ordered
lane waits for it), a full batch or a hand-back ends the wait sooner. Real database; the
attempts written are counted in it."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
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


_STEP = st.one_of(
    st.tuples(st.sampled_from(["normal", "lazy", "urgent", "release"]), st.just(0.0)),
    st.tuples(st.just("sleep"), st.floats(min_value=0.0, max_value=0.15)),
)
SLACK = 0.5  # the write itself, on a busy machine


async def _first_seen(ctx: AppContext, seen: dict[str, float], stop: asyncio.Event) -> None:
    """When each attempt is first seen in the database."""
    while not stop.is_set():
        async with ctx.db.read() as conn:
            rows = (await conn.execute(select(attempts.c.delivery_id))).all()
        now = time.monotonic()
        for (delivery_id,) in rows:
            seen.setdefault(delivery_id, now)
        await asyncio.sleep(0.01)


async def _run_steps(
    ctx: AppContext, rec: Recorder, steps: list[tuple[str, float]]
) -> dict[str, float]:
    """Push, hand back and pause as `steps` say; each outcome's latest time to be written."""
    bounds: dict[str, float] = {}
    for kind, pause in steps:
        now = time.monotonic()
        if kind == "sleep":
            await asyncio.sleep(pause)
            continue
        if kind == "release":
            rec.release(ids.new_id("msg"), None)
            wait = recorder_module.RELEASE_LINGER_SECONDS  # a hand-back carries what waits
        else:
            o = outcome(ctx)
            bounds[o.delivery_id] = math.inf
            rec.push(o, urgent=kind == "urgent", lazy=kind == "lazy")
            wait = {"urgent": 0.0, "lazy": recorder_module.RUN_LINGER_SECONDS}.get(kind)
        if wait is not None:  # everything pushed so far goes in that write at the latest
            for d in bounds:
                bounds[d] = min(bounds[d], now + wait + SLACK)
    return bounds


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(_STEP, min_size=1, max_size=12))
@example(steps=[("lazy", 0.0)])  # the recorder idle: only the lazy outcome's timer wakes it
@example(steps=[("normal", 0.0), ("sleep", 0.05), ("lazy", 0.0)])  # lingering already
async def test_each_outcome_is_written_within_its_kind_of_wait(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, steps: list[tuple[str, float]]
) -> None:
    """Random interleavings of plain, lazy and urgent outcomes, hand-backs and pauses, with
    a linger for company no test waits out: an urgent outcome is written at once, a lazy one
    within `RUN_LINGER_SECONDS`, anything waiting goes along with them or with a hand-back
    (after its shorter linger); closing writes the rest."""
    monkeypatch.setattr(recorder_module, "FLUSH_LINGER_SECONDS", LONG)
    rec = Recorder(
        ctx.db,
        ctx.clock,
        owner="me",
        disable_after_ms=10**9,
        subs=subscription_cache(ctx),
        wake_in=lambda _seconds: None,
    )
    rec.start()
    seen: dict[str, float] = {}
    stop = asyncio.Event()
    poller = asyncio.create_task(_first_seen(ctx, seen, stop))
    bounds = await _run_steps(ctx, rec, steps)
    due = [b for b in bounds.values() if b < math.inf]
    while due and time.monotonic() < max(due) + 0.05:
        await asyncio.sleep(0.02)
    late = {d: (seen.get(d), b) for d, b in bounds.items() if seen.get(d, math.inf) > b}
    await rec.close(5.0)
    stop.set()
    await poller
    assert not late, (late, steps)
    async with ctx.db.read() as conn:
        written_ids = {r[0] for r in (await conn.execute(select(attempts.c.delivery_id))).all()}
    assert written_ids >= set(bounds)  # closing wrote the rest

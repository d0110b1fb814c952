"""The engine's pure parts from tables: the outcome of an attempt (`decide`) and the admission
limits (per-host gate and slot book, rate schedules, saturation backoff, local queue budget)."""

from __future__ import annotations

import random

import pytest

from causeflow.webhook.engine import decide, last_error_of
from causeflow.webhook.limits import (
    HostGate,
    QueueBudget,
    RateSlots,
    SaturationBackoff,
    SlotBook,
    grant,
    origin_of,
    rate_tolerance,
)
from causeflow.webhook.queue import CLEAR_FAILURE, EXHAUSTED, GONE, Claimed
from causeflow.webhook.sender import SendResult

pytestmark = pytest.mark.unit

SCHEDULE = (1.0, 10.0, 100.0)  # 4 attempts in all
NOW = 1_800_000_000_000


def claimed(attempts: int = 0, *, manual: bool = False, payload: str | None = None) -> Claimed:
    return Claimed(
        id="msg_1",
        tenant_id="ten_1",
        subscription_id="sub_1",
        event_id="evt_1",
        event_type="incident.created",
        attempts=attempts,
        manual=manual,
        payload=payload,
        next_attempt_at=NOW,
    )


def result(
    status: int | None, error: str | None = None, retry_after: str | None = None
) -> SendResult:
    return SendResult(status, 12.4, b"answer", error, retry_after)


def run(c: Claimed, r: SendResult) -> tuple[str, str | None, float | None]:
    out = decide(c, r, schedule=SCHEDULE, rng=random.Random(7), now_ms=NOW, url="https://x")
    delay = (out.next_attempt_at - NOW) / 1000 if out.next_attempt_at is not None else None
    return out.status, out.effect, delay


@pytest.mark.parametrize(
    ("case", "c", "r", "status", "effect", "delay_range"),
    [
        ("2xx", claimed(), result(204), "succeeded", CLEAR_FAILURE, None),
        ("2xx of a test", claimed(payload="{}"), result(200), "succeeded", None, None),
        ("410", claimed(), result(410), "failed", GONE, None),
        ("410 of a test", claimed(payload="{}"), result(410), "failed", None, None),
        ("first failure", claimed(0), result(500), "pending", None, (0.8, 1.2)),
        ("second failure", claimed(1), result(500), "pending", None, (8, 12)),
        ("redirect fails", claimed(0), result(302, "redirect"), "pending", None, (0.8, 1.2)),
        ("timeout", claimed(2), result(None, "timeout"), "pending", None, (80, 120)),
        ("last attempt", claimed(3), result(500), "failed", EXHAUSTED, None),
        ("last of a test", claimed(3, payload="{}"), result(500), "failed", None, None),
        ("manual failure", claimed(8, manual=True), result(500), "failed", None, None),
        ("manual success", claimed(8, manual=True), result(200), "succeeded", CLEAR_FAILURE, None),
        # recovered after exhausting (4 made): the schedule starts over
        ("recovered", claimed(4), result(500), "pending", None, (0.8, 1.2)),
        ("recovered, last", claimed(7), result(500), "failed", EXHAUSTED, None),
        # Retry-After waits max(step k, min(Retry-After, step k+1))
        ("429 asks 5 s", claimed(0), result(429, None, "5"), "pending", None, (5, 5)),
        ("503 asks 1 h", claimed(0), result(503, None, "3600"), "pending", None, (10, 10)),
        ("429 asks less", claimed(1), result(429, None, "1"), "pending", None, (8, 12)),
        ("500 ignores it", claimed(0), result(500, None, "5"), "pending", None, (0.8, 1.2)),
    ],
)
def test_decide(
    case: str,
    c: Claimed,
    r: SendResult,
    status: str,
    effect: str | None,
    delay_range: tuple[float, float] | None,
) -> None:
    got_status, got_effect, delay = run(c, r)
    assert (got_status, got_effect) == (status, effect), case
    if delay_range is None:
        assert delay is None, case
    else:
        assert delay is not None and delay_range[0] <= delay <= delay_range[1], (case, delay)


def test_decide_records_the_attempt() -> None:
    out = decide(
        claimed(1),
        SendResult(503, 41.6, b"x" * 5000, None),
        schedule=SCHEDULE,
        rng=random.Random(1),
        now_ms=NOW,
        url="https://x",
    )
    assert out.attempted and out.attempts == 2
    assert out.status_code == 503 and out.latency_ms == 42
    assert out.error == out.last_error == "HTTP 503 Service Unavailable"
    assert out.response_body == "x" * 4096


@pytest.mark.parametrize(
    ("r", "text"),
    [
        (result(500), "HTTP 500 Internal Server Error"),
        (result(599), "HTTP 599"),
        (result(None, "timeout"), "timeout"),
        (result(None, "ssrf_blocked"), "ssrf_blocked"),
    ],
)
def test_last_error(r: SendResult, text: str) -> None:
    assert last_error_of(r) == text


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Hooks.Example.com/a?b", "https://hooks.example.com:443"),
        ("http://hooks.example.com/a", "http://hooks.example.com:80"),
        ("https://hooks.example.com:8443/", "https://hooks.example.com:8443"),
        ("http://127.0.0.1:9000/x", "http://127.0.0.1:9000"),
        ("https://[::1]:8443/x", "https://::1:8443"),
    ],
)
def test_origin_of(url: str, origin: str) -> None:
    assert origin_of(url) == origin


def test_host_gate_caps_each_origin_alone() -> None:
    gate = HostGate(2)
    assert [gate.try_enter("a") for _ in range(3)] == [True, True, False]
    assert gate.try_enter("b")  # another host has its own slots
    gate.leave("a")
    assert gate.inflight("a") == 1 and gate.try_enter("a") and gate.full("a")
    gate.leave("a")
    gate.leave("a")
    assert gate.inflight("a") == 0


def test_rate_slots_space_the_starts() -> None:
    rates = RateSlots()
    slots = [rates.reserve("s", 4, 100.0, horizon=2.0) for _ in range(9)]
    # the first at once, then one every 1/4 s, never more than the horizon ahead
    assert slots == [(100.0 + 0.25 * i, True) for i in range(9)]
    assert rates.reserve("s", 4, 100.0, horizon=2.0) == (102.25, False)  # nothing taken
    assert rates.reserve("s", 4, 100.0, horizon=2.0) == (102.25, False)
    # time passes: the schedule goes on from where it is
    assert rates.reserve("s", 4, 101.0, horizon=2.0) == (102.25, True)
    # an idle subscription starts at once again; another subscription has its own schedule
    assert rates.reserve("s", 4, 200.0, horizon=2.0) == (200.0, True)
    assert rates.reserve("t", 4, 200.0, horizon=2.0) == (200.0, True)


def test_rate_slots_forget_free_schedules() -> None:
    rates = RateSlots()
    rates.reserve("a", 2, 0.0, horizon=2.0)
    rates.reserve("b", 2, 0.0, horizon=2.0)
    rates.reserve("b", 2, 0.0, horizon=2.0)
    rates.prune(0.6)  # a is free from 0.5 on, b from 1.0
    assert len(rates) == 1
    rates.prune(10.0)
    assert len(rates) == 0


@pytest.mark.parametrize(
    ("next_free", "now", "wanted", "interval", "end", "expected"),
    [
        (0, 10, 3, 2, 100, (10, 3)),  # an idle schedule starts now
        (50, 10, 3, 2, 100, (50, 3)),  # a busy one where it is
        (95, 10, 5, 2, 100, (95, 3)),  # 95, 97, 99: no further than the horizon
        (100, 10, 5, 2, 100, (100, 1)),  # the horizon itself still counts
        (101, 10, 5, 2, 100, (101, 0)),  # full: when the next one would be
    ],
)
def test_grant(
    next_free: int, now: int, wanted: int, interval: int, end: int, expected: tuple[int, int]
) -> None:
    assert grant(next_free, now, wanted, interval, end) == expected


@pytest.mark.parametrize(
    ("rate", "bound"), [(1, 2), (5, 6), (10, 11), (20, 21), (21, 23), (100, 105), (1000, 1050)]
)
def test_rate_tolerance_and_the_window_bound(rate: int, bound: int) -> None:
    # starts in any one-second window come from slots in an interval of 1 s + tolerance
    import math

    assert math.ceil(rate * (1 + rate_tolerance(rate)) - 1e-9) == bound


def test_slot_book_reuses_idle_slots_and_respects_their_leases() -> None:
    book = SlotBook(cap=4)
    assert book.take("h", need=1.0) is None  # nothing held yet
    book.add("h", [0, 2], deadline=10.0, now=0.0)
    assert book.held("h") == 2 and book.busy("h") == 0
    first = book.take("h", need=5.0)
    second = book.take("h", need=5.0)
    assert {first, second} == {0, 2} and book.take("h", need=5.0) is None
    assert book.busy("h") == 2
    assert first is not None and second is not None
    book.give_back("h", first, now=1.0, need=2.0)
    assert book.idle_count() == 1 and book.busy("h") == 1
    # kept idle for a while, then released
    assert book.idle_since(0.5) == [] and book.idle_since(1.0) == [("h", first)]
    assert book.held("h") == 1
    # a lease that cannot cover another attempt is not used again
    assert book.usable("h", second, need=9.0) and not book.usable("h", second, need=11.0)
    book.give_back("h", second, now=2.0, need=11.0)
    assert book.held("h") == 0 and book.held_slots() == set()
    assert book.take_lapsed() == [("h", second)]  # to be released, not kept by renewals
    assert book.take_lapsed() == []


def test_slot_book_renewal_keeps_what_the_database_kept() -> None:
    book = SlotBook(cap=4)
    book.add("h", [0, 1], deadline=10.0, now=0.0)
    busy = book.take("h", need=1.0)
    assert busy is not None
    idle = 1 - busy
    book.renewed({("h", 0), ("h", 1)}, kept={("h", busy)}, deadline=20.0)
    assert book.usable("h", busy, need=19.0)
    assert book.held("h") == 1  # the lost idle one is gone
    assert ("h", idle) not in book.held_slots() and book.take_lapsed() == [("h", idle)]
    book.renewed({("h", busy)}, kept=set(), deadline=30.0)
    assert not book.usable("h", busy, need=0.5)  # the lane stops, the slot is dropped
    book.give_back("h", busy, now=3.0, need=4.0)
    assert book.forget_all() == []


def test_saturation_backoff_doubles_while_full_and_resets() -> None:
    backoff = SaturationBackoff(base=0.5, cap=3.0)
    assert backoff.delay("h", 0.0) == 0.5
    assert backoff.delay("h", 0.1) == 0.5  # the same burst shares it
    assert backoff.delay("h", 1.0) == 1.0
    assert backoff.delay("h", 2.0) == 2.0
    assert backoff.delay("h", 4.0) == 3.0  # capped
    backoff.reset("h")
    assert backoff.delay("h", 5.0) == 0.5


def test_queue_budget_from_recent_durations() -> None:
    budget = QueueBudget(budget_seconds=20.0)
    # unknown host: one round (it might be a dead one)
    assert budget.may_queue("new", 15, cap=16) and not budget.may_queue("new", 16, cap=16)
    budget.observe("fast", 0.005)
    assert budget.may_queue("fast", 240, cap=16)
    budget.observe("dead", 15.0)
    assert budget.may_queue("dead", 15, cap=16) and not budget.may_queue("dead", 16, cap=16)
    for _ in range(30):
        budget.observe("dead", 0.01)  # it recovered
    assert budget.may_queue("dead", 240, cap=16)

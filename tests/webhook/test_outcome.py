"""The delivery outcome rules from a table: one attempt's result, the delivery's attempt count
and manual flag, the subscription's stored state and the policy give everything that follows.

Each case runs both halves as the service applies them: `delivery_step` (the worker, right after
the attempt), then `subscription_step` on its effect (the repository, with the stored state)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from causeflow.webhook.outcome import (
    CLEAR_FAILURE,
    EVENT_DISABLED,
    EVENT_EXHAUSTED,
    EXHAUSTED,
    FAILED,
    GONE,
    PENDING,
    REASON_FAILING,
    REASON_GONE,
    SUCCEEDED,
    Attempt,
    SubscriptionState,
    delivery_step,
    subscription_step,
)

pytestmark = pytest.mark.unit


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings the rules depend on."""

    schedule: tuple[float, ...]  # delays between attempts, seconds
    disable_after_ms: int  # how old a failure window must be to disable the subscription


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything one attempt leads to, for the delivery and for its subscription."""

    status: str
    next_attempt_at: int | None
    effect: str | None
    clear_first_failure: bool
    set_first_failure_at: int | None
    disable_reason: str | None
    events: tuple[str, ...]


def decide(
    attempt: Attempt,
    *,
    attempts: int,
    manual: bool,
    test: bool = False,
    subscription: SubscriptionState | None,
    now_ms: int,
    policy: Policy,
    rng: random.Random,
) -> Decision:
    """Both halves for one attempt, as if recorded at the moment it was made."""
    delivery = delivery_step(
        attempt,
        attempts=attempts,
        manual=manual,
        test=test,
        now_ms=now_ms,
        schedule=policy.schedule,
        rng=rng,
    )
    sub = subscription_step(
        delivery.effect, subscription, now_ms=now_ms, disable_after_ms=policy.disable_after_ms
    )
    return Decision(
        status=delivery.status,
        next_attempt_at=delivery.next_attempt_at,
        effect=delivery.effect,
        clear_first_failure=sub.clear_first_failure,
        set_first_failure_at=sub.set_first_failure_at,
        disable_reason=sub.disable_reason,
        events=sub.events,
    )


NOW = 1_800_000_000_000
WINDOW_MS = 3_600_000  # disable after an hour of failures
POLICY = Policy(schedule=(1.0, 10.0, 100.0), disable_after_ms=WINDOW_MS)  # 4 attempts in all


class NoJitter(random.Random):
    """Real randomness is irrelevant here: every step lands on its middle."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def at(seconds: float) -> int:
    return NOW + int(seconds * 1000)


def ok(status: int = 204) -> Attempt:
    return Attempt(ok=True, status_code=status)


def fail(status: int | None, retry_after: str | None = None) -> Attempt:
    return Attempt(ok=False, status_code=status, retry_after=retry_after)


FRESH = SubscriptionState(enabled=True, first_failure_at=None)


def failing_since(ms_ago: int, *, enabled: bool = True) -> SubscriptionState:
    return SubscriptionState(enabled=enabled, first_failure_at=NOW - ms_ago)


def d(
    status: str,
    next_at: int | None = None,
    effect: str | None = None,
    *,
    clear: bool = False,
    start: int | None = None,
    disable: str | None = None,
    events: tuple[str, ...] = (),
) -> Decision:
    return Decision(status, next_at, effect, clear, start, disable, events)


# (case, attempt, attempts made (this one included), manual, test, subscription, expected)
CASES: list[tuple[str, Attempt, int, bool, bool, SubscriptionState | None, Decision]] = [
    ("2xx", ok(), 1, False, False, FRESH, d(SUCCEEDED, effect=CLEAR_FAILURE, clear=True)),
    (
        "2xx while failing",
        ok(200),
        3,
        False,
        False,
        failing_since(WINDOW_MS * 2),
        d(SUCCEEDED, effect=CLEAR_FAILURE, clear=True),
    ),
    ("2xx of a test delivery", ok(), 1, False, True, FRESH, d(SUCCEEDED)),
    ("5xx, first attempt", fail(500), 1, False, False, FRESH, d(PENDING, at(1))),
    ("5xx, attempts left", fail(502), 3, False, False, FRESH, d(PENDING, at(100))),
    ("timeout, attempts left", fail(None), 2, False, False, FRESH, d(PENDING, at(10))),
    (
        "exhausted, no failure before",
        fail(500),
        4,
        False,
        False,
        FRESH,
        d(FAILED, effect=EXHAUSTED, start=NOW, events=(EVENT_EXHAUSTED,)),
    ),
    (
        "exhausted, first failure younger than the window",
        fail(500),
        4,
        False,
        False,
        failing_since(WINDOW_MS - 1),
        d(FAILED, effect=EXHAUSTED, events=(EVENT_EXHAUSTED,)),
    ),
    (
        "exhausted, first failure exactly the window old",
        fail(500),
        4,
        False,
        False,
        failing_since(WINDOW_MS),
        d(
            FAILED,
            effect=EXHAUSTED,
            disable=REASON_FAILING,
            events=(EVENT_EXHAUSTED, EVENT_DISABLED),
        ),
    ),
    (
        "exhausted, first failure older than the window",
        fail(None),
        4,
        False,
        False,
        failing_since(WINDOW_MS * 5),
        d(
            FAILED,
            effect=EXHAUSTED,
            disable=REASON_FAILING,
            events=(EVENT_EXHAUSTED, EVENT_DISABLED),
        ),
    ),
    (
        "exhausted, old window, already disabled",
        fail(500),
        4,
        False,
        False,
        failing_since(WINDOW_MS * 5, enabled=False),
        d(FAILED, effect=EXHAUSTED, events=(EVENT_EXHAUSTED,)),
    ),
    (
        "exhausted, subscription deleted",
        fail(500),
        4,
        False,
        False,
        None,
        d(FAILED, effect=EXHAUSTED, events=(EVENT_EXHAUSTED,)),
    ),
    ("exhausted test delivery", fail(500), 4, False, True, failing_since(WINDOW_MS), d(FAILED)),
    # recovered after exhausting: the schedule starts over, the count keeps growing
    ("recovered, first failure", fail(500), 5, False, False, FRESH, d(PENDING, at(1))),
    (
        "recovered, exhausted again",
        fail(500),
        8,
        False,
        False,
        FRESH,
        d(FAILED, effect=EXHAUSTED, start=NOW, events=(EVENT_EXHAUSTED,)),
    ),
    (
        "410",
        fail(410),
        1,
        False,
        False,
        FRESH,
        d(FAILED, effect=GONE, disable=REASON_GONE, events=(EVENT_DISABLED,)),
    ),
    (
        "410 on a manual retry",
        fail(410),
        9,
        True,
        False,
        failing_since(1),
        d(FAILED, effect=GONE, disable=REASON_GONE, events=(EVENT_DISABLED,)),
    ),
    (
        "410, already disabled",
        fail(410),
        1,
        False,
        False,
        failing_since(1, enabled=False),
        d(FAILED, effect=GONE),
    ),
    ("410, subscription deleted", fail(410), 1, False, False, None, d(FAILED, effect=GONE)),
    ("410 of a test delivery", fail(410), 1, False, True, FRESH, d(FAILED)),
    # a manual retry is one attempt: a failure is final, not retried, and exhausts nothing
    ("manual retry fails", fail(500), 9, True, False, failing_since(WINDOW_MS * 5), d(FAILED)),
    ("manual retry fails early", fail(503, "5"), 1, True, False, FRESH, d(FAILED)),
    (
        "manual retry succeeds",
        ok(),
        9,
        True,
        False,
        failing_since(1),
        d(SUCCEEDED, effect=CLEAR_FAILURE, clear=True),
    ),
    # Retry-After: max(step k, min(Retry-After, step k+1)), only for 429 and 503
    ("429 asks 5 s", fail(429, "5"), 1, False, False, FRESH, d(PENDING, at(5))),
    ("503 asks an hour: capped", fail(503, "3600"), 1, False, False, FRESH, d(PENDING, at(10))),
    ("429 asks less than the step", fail(429, "1"), 2, False, False, FRESH, d(PENDING, at(10))),
    (
        "503 asks by date",
        fail(503, "Fri, 15 Jan 2027 08:00:07 GMT"),
        1,
        False,
        False,
        FRESH,
        d(PENDING, at(7)),
    ),
    ("429 on the last step: capped", fail(429, "999"), 3, False, False, FRESH, d(PENDING, at(100))),
    ("429, unparseable", fail(429, "soon"), 1, False, False, FRESH, d(PENDING, at(1))),
    ("500 ignores Retry-After", fail(500, "5"), 1, False, False, FRESH, d(PENDING, at(1))),
    (
        "429 with attempts used up",
        fail(429, "5"),
        4,
        False,
        False,
        FRESH,
        d(FAILED, effect=EXHAUSTED, start=NOW, events=(EVENT_EXHAUSTED,)),
    ),
]


@pytest.mark.parametrize(
    ("attempt", "attempts", "manual", "test", "subscription", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide(
    attempt: Attempt,
    attempts: int,
    manual: bool,
    test: bool,
    subscription: SubscriptionState | None,
    expected: Decision,
) -> None:
    got = decide(
        attempt,
        attempts=attempts,
        manual=manual,
        test=test,
        subscription=subscription,
        now_ms=NOW,
        policy=POLICY,
        rng=NoJitter(),
    )
    assert got == expected


def test_a_window_opened_now_is_not_closed_by_the_same_exhaustion() -> None:
    # with no grace at all, the exhaustion that opens the window still only opens it
    got = decide(
        fail(500),
        attempts=4,
        manual=False,
        subscription=FRESH,
        now_ms=NOW,
        policy=Policy(POLICY.schedule, disable_after_ms=0),
        rng=NoJitter(),
    )
    assert (got.set_first_failure_at, got.disable_reason) == (NOW, None)
    # and the next one, a moment later, closes it
    again = decide(
        fail(500),
        attempts=4,
        manual=False,
        subscription=SubscriptionState(True, NOW),
        now_ms=NOW,
        policy=Policy(POLICY.schedule, disable_after_ms=0),
        rng=NoJitter(),
    )
    assert again.disable_reason == REASON_FAILING


def test_jitter_stays_within_a_fifth_of_the_step() -> None:
    delays = {
        decide(
            fail(500),
            attempts=2,
            manual=False,
            subscription=FRESH,
            now_ms=NOW,
            policy=POLICY,
            rng=random.Random(seed),
        ).next_attempt_at
        for seed in range(50)
    }
    assert all(d is not None and at(8) <= d <= at(12) for d in delays)
    assert len(delays) > 1

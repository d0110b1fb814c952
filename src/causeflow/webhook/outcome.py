"""What one delivery attempt comes to (pure: time, randomness and stored state come in).

Two halves, because they are known at different moments:

- `delivery_step`: the delivery's next state, decided by the worker right after the attempt:
  a 2xx succeeds; a 410 fails and marks the subscription gone; a manual retry that fails is
  not rescheduled; otherwise the next step of the retry schedule (a 429/503 honours
  `Retry-After`) or, with the schedule used up, failed and exhausted.
- `subscription_step`: what that does to the subscription, decided by the repository inside
  the recording transaction from the subscription's stored state: a success clears
  `firstFailureAt`; a 410 disables at once; an exhaustion emits its event, opens the failure
  window (`firstFailureAt`) when none is open, and disables the subscription once the window
  is at least `disable_after` old.

The worker and the repository only execute what they return.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from causeflow.webhook.retry import max_attempts, next_delay, parse_retry_after

# Delivery statuses an attempt can lead to.
SUCCEEDED = "succeeded"
PENDING = "pending"
FAILED = "failed"

# The effects an attempt has on its subscription (none for test deliveries).
CLEAR_FAILURE = "clear_failure"  # a 2xx: forget firstFailureAt
GONE = "gone"  # a 410: disable at once
EXHAUSTED = "exhausted"  # retries used up: event, firstFailureAt, maybe auto-disable

REASON_GONE = "endpoint_gone"
REASON_FAILING = "repeated_failures"

EVENT_EXHAUSTED = "webhook.delivery_exhausted"
EVENT_DISABLED = "webhook.subscription_disabled"

_RETRY_AFTER_CODES = (429, 503)


@dataclass(frozen=True, slots=True)
class Attempt:
    """The part of an attempt's result the rules look at."""

    ok: bool  # a 2xx answer
    status_code: int | None  # None: no HTTP answer (timeout, refused, blocked, ...)
    retry_after: str | None = None  # the raw `Retry-After` header, if any


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """The subscription as stored when the outcome is recorded."""

    enabled: bool
    first_failure_at: int | None  # epoch ms; None while no failure window is open


@dataclass(frozen=True, slots=True)
class DeliveryStep:
    status: str  # SUCCEEDED | PENDING | FAILED
    next_attempt_at: int | None  # epoch ms, only while PENDING
    effect: str | None  # CLEAR_FAILURE | GONE | EXHAUSTED | None


@dataclass(frozen=True, slots=True)
class SubscriptionStep:
    clear_first_failure: bool = False
    set_first_failure_at: int | None = None  # epoch ms to store as firstFailureAt
    disable_reason: str | None = None  # REASON_GONE | REASON_FAILING: disable it
    events: tuple[str, ...] = ()  # operational events to append, in order


NOTHING = SubscriptionStep()


def delivery_step(
    attempt: Attempt,
    *,
    attempts: int,
    manual: bool,
    test: bool,
    now_ms: int,
    schedule: tuple[float, ...],
    rng: random.Random,
) -> DeliveryStep:
    """The delivery's next state after its `attempts`-th attempt (this one included).

    The step counts attempts modulo the schedule's length, so a delivery that was recovered
    after exhausting starts the schedule over while its attempt count keeps growing. Test
    deliveries have no effect on their subscription.
    """
    if attempt.ok:
        return DeliveryStep(SUCCEEDED, None, None if test else CLEAR_FAILURE)
    if attempt.status_code == 410:
        return DeliveryStep(FAILED, None, None if test else GONE)
    if manual:
        return DeliveryStep(FAILED, None, None)
    run = (attempts - 1) % max_attempts(schedule) + 1
    retry_after = (
        parse_retry_after(attempt.retry_after, now_ms / 1000)
        if attempt.status_code in _RETRY_AFTER_CODES
        else None
    )
    delay = next_delay(schedule, run, rng, retry_after)
    if delay is None:
        return DeliveryStep(FAILED, None, None if test else EXHAUSTED)
    return DeliveryStep(PENDING, now_ms + int(delay * 1000), None)


def subscription_step(
    effect: str | None,
    state: SubscriptionState | None,
    *,
    now_ms: int,
    disable_after_ms: int,
) -> SubscriptionStep:
    """What `effect` does to a subscription stored as `state` (None: it was deleted).

    A success clears `firstFailureAt` whatever else is stored. Disabling happens only to an
    enabled subscription, so its event goes out once. The first exhaustion opens the failure
    window and never disables by itself; a later one disables when the window started at least
    `disable_after_ms` before `now_ms`.
    """
    if effect == CLEAR_FAILURE:
        return SubscriptionStep(clear_first_failure=True)
    if effect == GONE:
        if state is None or not state.enabled:
            return NOTHING
        return SubscriptionStep(disable_reason=REASON_GONE, events=(EVENT_DISABLED,))
    if effect == EXHAUSTED:
        if state is None:
            return SubscriptionStep(events=(EVENT_EXHAUSTED,))
        if state.first_failure_at is None:
            return SubscriptionStep(set_first_failure_at=now_ms, events=(EVENT_EXHAUSTED,))
        if state.enabled and state.first_failure_at <= now_ms - disable_after_ms:
            return SubscriptionStep(
                disable_reason=REASON_FAILING, events=(EVENT_EXHAUSTED, EVENT_DISABLED)
            )
        return SubscriptionStep(events=(EVENT_EXHAUSTED,))
    return NOTHING

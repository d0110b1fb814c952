"""The pure rules of per-tenant limits: which figure is in force (the tenant's override, else its
plan's, else the setting's), the ranges an override may take, and budgets spent several units
at a time (a batch of events) all or none."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from causeflow.ratelimit.limiter import WINDOW_MS, RateLimiter
from causeflow.ratelimit.limits import (
    FIELDS,
    NAMES,
    Stored,
    defaults_of,
    effective,
    resolve,
    view,
)
from causeflow.settings import PLAN_LIMITS, Settings
from causeflow.tenant.schemas import LimitsUpdate

pytestmark = pytest.mark.unit

figures = st.integers(min_value=0, max_value=10**6)
overrides = st.fixed_dictionaries({}, optional={n: st.none() | figures for n in NAMES})
plan_figures = st.fixed_dictionaries({}, optional={n: figures for n in NAMES})
defaults = st.fixed_dictionaries({n: figures for n in NAMES})


@given(overrides, plan_figures, defaults)
def test_the_override_wins_then_the_plan_then_the_default(own, plan, fallback):
    out = resolve(own, plan, fallback)
    assert set(out) == set(NAMES)
    for name in NAMES:
        if own.get(name) is not None:
            assert out[name] == own[name]
        elif name in plan:
            assert out[name] == plan[name]
        else:
            assert out[name] == fallback[name]


@given(defaults)
def test_no_override_no_plan_figure_is_the_default(fallback):
    assert resolve({n: None for n in NAMES}, {}, fallback) == fallback


def test_effective_limits_from_the_settings_and_the_plan():
    settings = Settings.model_construct(
        rate_limit_per_minute=None,
        publish_rate_limit_per_minute=7,
        ingest_rate_limit_per_minute=6000,
        max_subscriptions_per_tenant=100,
        sse_max_streams_per_tenant=1000,
        retention_days=30.0,
        default_plan="business",
    )
    unknown = effective(settings, None)
    assert unknown.requests_per_minute == PLAN_LIMITS["business"]
    assert unknown.publish_per_minute == 7 and unknown.event_retention_days == 30.0
    starter = effective(settings, Stored("starter"))
    assert starter.requests_per_minute == PLAN_LIMITS["starter"]  # the plan's figure
    raised = effective(settings, Stored("starter", {"requests_per_minute": 9, "max_streams": 2}))
    assert raised.requests_per_minute == 9 and raised.max_streams == 2
    assert raised.max_subscriptions == 100 and raised.delivery_retention_days == 30.0
    # CAUSEFLOW_RATE_LIMIT_PER_MINUTE replaces every plan's figure, not a tenant's override.
    flat = settings.model_copy(update={"rate_limit_per_minute": 0})
    assert effective(flat, Stored("starter")).requests_per_minute == 0
    assert effective(flat, Stored("pro", {"requests_per_minute": 5})).requests_per_minute == 5
    assert defaults_of(flat)["requests_per_minute"] == 0


def test_the_view_names_every_field_once():
    settings = Settings.model_construct(retention_days=30.0, rate_limit_per_minute=None)
    out = view(settings, "ten_1", Stored("pro", {"event_retention_days": 2}))
    assert set(out["overrides"]) == set(out["effective"]) == {f.wire for f in FIELDS}  # type: ignore[arg-type]
    assert out["effective"]["eventRetentionDays"] == 2  # type: ignore[index]
    assert out["effective"]["deliveryRetentionDays"] == 30  # type: ignore[index]
    assert out["overrides"]["maxStreams"] is None  # type: ignore[index]


@given(st.sampled_from(FIELDS), st.integers(min_value=-(10**7), max_value=10**7))
def test_an_override_is_an_integer_from_1_to_its_maximum(spec, value):
    if 1 <= value <= spec.maximum:
        assert getattr(LimitsUpdate(**{spec.wire: value}), spec.wire) == value
    else:
        with pytest.raises(ValidationError):
            LimitsUpdate(**{spec.wire: value})


@pytest.mark.parametrize("value", ["5", 5.0, 1.5, True, [], {}])
def test_an_override_is_never_coerced(value):
    with pytest.raises(ValidationError):
        LimitsUpdate.model_validate({"maxStreams": value})


def test_null_resets_and_absence_leaves_alone():
    body = LimitsUpdate.model_validate({"maxStreams": None, "publishPerMinute": 3})
    assert body.model_dump(exclude_unset=True) == {"maxStreams": None, "publishPerMinute": 3}


@given(st.integers(min_value=1, max_value=50), st.lists(st.integers(1, 20), max_size=40))
def test_a_budget_spent_in_batches_is_all_or_none_and_never_exceeded(limit, costs):
    limiter = RateLimiter()
    now = 10 * WINDOW_MS
    spent = 0
    for cost in costs:
        decision = limiter.hit("publish:t", limit, now, cost)
        assert decision.allowed == (spent + cost <= limit)
        if decision.allowed:
            spent += cost
        assert decision.remaining == limit - spent
    assert spent <= limit
    # another bucket (another tenant) has its whole budget
    assert limiter.hit("publish:other", limit, now, limit).allowed


def test_a_refusal_says_when_the_window_ends():
    limiter = RateLimiter()
    now = 10 * WINDOW_MS + 15_000
    assert limiter.hit("b", 3, now, 3).allowed
    refused = limiter.hit("b", 3, now, 1)
    assert not refused.allowed and refused.retry_after(now) == 45
    assert limiter.hit("b", 3, now + 45_000, 3).allowed  # the next window

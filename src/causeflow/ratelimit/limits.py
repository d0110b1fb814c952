"""Per-tenant limits: what a platform admin may set, within which ranges, and the rule that
gives a tenant's effective figures. Pure: no database, no clock.

A figure is the tenant's own override when it has one; else its plan's figure, when the plan
sets one (today the request budget, `PLAN_LIMITS`); else the service-wide default from the
settings. A stored null is "no override": the figure follows the plan and the settings, and
changes with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from causeflow.settings import Settings


@dataclass(frozen=True, slots=True)
class LimitField:
    wire: str  # the API's name
    name: str  # the attribute and column name
    maximum: int  # overrides are integers from 1 to this
    unit: str


FIELDS: tuple[LimitField, ...] = (
    LimitField("requestsPerMinute", "requests_per_minute", 1_000_000, "requests per minute"),
    LimitField("publishPerMinute", "publish_per_minute", 1_000_000, "events published per minute"),
    LimitField("ingestPerMinute", "ingest_per_minute", 1_000_000, "inbound requests per minute"),
    LimitField("maxSubscriptions", "max_subscriptions", 10_000, "webhook subscriptions"),
    LimitField("maxStreams", "max_streams", 100_000, "concurrent streams per process"),
    LimitField("eventRetentionDays", "event_retention_days", 3650, "days"),
    LimitField("deliveryRetentionDays", "delivery_retention_days", 3650, "days"),
)
BY_WIRE = {f.wire: f for f in FIELDS}
NAMES = tuple(f.name for f in FIELDS)

Number = int | float


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """A tenant's effective figures (0 for a rate: no limit)."""

    requests_per_minute: int
    publish_per_minute: int
    ingest_per_minute: int
    max_subscriptions: int
    max_streams: int
    event_retention_days: float
    delivery_retention_days: float


@dataclass(frozen=True, slots=True)
class Stored:
    """What is stored for a tenant: its plan and its overrides (None: not overridden)."""

    plan: str
    overrides: Mapping[str, int | None] = field(default_factory=dict)


def resolve(
    overrides: Mapping[str, int | None],
    plan_figures: Mapping[str, Number],
    defaults: Mapping[str, Number],
) -> dict[str, Number]:
    """Each field's effective figure: the override, else the plan's, else the default."""
    out: dict[str, Number] = {}
    for name in NAMES:
        own = overrides.get(name)
        if own is not None:
            out[name] = own
        elif name in plan_figures:
            out[name] = plan_figures[name]
        else:
            out[name] = defaults[name]
    return out


def defaults_of(settings: Settings) -> dict[str, Number]:
    """The service-wide defaults, from the settings."""
    return {
        "requests_per_minute": settings.plan_limit(settings.default_plan),
        "publish_per_minute": settings.publish_rate_limit_per_minute,
        "ingest_per_minute": settings.ingest_rate_limit_per_minute,
        "max_subscriptions": settings.max_subscriptions_per_tenant,
        "max_streams": settings.sse_max_streams_per_tenant,
        "event_retention_days": settings.retention_days,
        "delivery_retention_days": settings.retention_days,
    }


def plan_figures_of(settings: Settings, plan: str) -> dict[str, Number]:
    """The figures a plan sets: its request budget (`CAUSEFLOW_RATE_LIMIT_PER_MINUTE`, when
    set, replaces every plan's)."""
    return {"requests_per_minute": settings.plan_limit(plan or settings.default_plan)}


def effective(settings: Settings, stored: Stored | None) -> TenantLimits:
    """A tenant's effective limits; the defaults (of the default plan) for None."""
    if stored is None:
        stored = Stored(settings.default_plan)
    plan = plan_figures_of(settings, stored.plan)
    values = resolve(stored.overrides, plan, defaults_of(settings))
    return TenantLimits(
        requests_per_minute=int(values["requests_per_minute"]),
        publish_per_minute=int(values["publish_per_minute"]),
        ingest_per_minute=int(values["ingest_per_minute"]),
        max_subscriptions=int(values["max_subscriptions"]),
        max_streams=int(values["max_streams"]),
        event_retention_days=float(values["event_retention_days"]),
        delivery_retention_days=float(values["delivery_retention_days"]),
    )


def wire_number(value: Number) -> Number:
    """An integral figure as an integer (30.0 days reads 30)."""
    return int(value) if float(value).is_integer() else value


def view(settings: Settings, tenant_id: str, stored: Stored) -> dict[str, object]:
    """The API's view of a tenant's limits: its overrides and its effective figures."""
    limits = effective(settings, stored)
    return {
        "tenantId": tenant_id,
        "plan": stored.plan,
        "overrides": {f.wire: stored.overrides.get(f.name) for f in FIELDS},
        "effective": {f.wire: wire_number(getattr(limits, f.name)) for f in FIELDS},
    }

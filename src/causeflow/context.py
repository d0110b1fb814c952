"""`AppContext`: the process-wide parts the composition root builds and routes reach.

Built once by `app.create_app` (or by CLI commands) and kept on `app.state.ctx`; dependencies
hand it to routers. Nothing here does work at import time.

The long-running parts that features start (stream hub, delivery engine, dispatcher, inbound
runtime, caches) are typed attributes, None until their owner sets them. Their types are the
small views below, so this module imports no feature; an owner that needs more of its own part
narrows it back to its class.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from causeflow.auth.apikeys import KeyCache
from causeflow.auth.keys import ServiceKeys
from causeflow.auth.principal import Principal
from causeflow.auth.tokens import TokenService
from causeflow.cache import TtlCache
from causeflow.clock import Clock
from causeflow.db.batcher import Batcher
from causeflow.db.engine import Database
from causeflow.event.broker import Broker
from causeflow.ratelimit.limiter import RateLimiter
from causeflow.ratelimit.limits import Stored, TenantLimits, effective
from causeflow.settings import Settings

# A tenant's plan, "" when there is no such tenant (the tenant feature's `load_plan`).
PlanLoader = Callable[[Database, str], Awaitable[str]]
# A tenant's plan and limit overrides, None when there is no such tenant (`load_limits`).
LimitsLoader = Callable[[Database, str], Awaitable[Stored | None]]
# The principal of a dashboard session id, or None (the dashboard's, for the gateway).
SessionLookup = Callable[[str], Awaitable[Principal | None]]


class Stoppable(Protocol):
    async def stop(self) -> None: ...


class StreamHubPart(Protocol):
    """This process's stream hub (`stream/hub.py`)."""

    def shutdown_threadsafe(self) -> None: ...


class InboundPart(Protocol):
    """This process's inbound runtime (`ingest/runtime.py`)."""

    async def close(self) -> None: ...


class SubscriptionCachePart(Protocol):
    """This process's cache of webhook subscriptions (`webhook/subscriptions.py`)."""

    def invalidate(
        self, subscription_id: str | None = None, tenant_id: str | None = None
    ) -> None: ...


class LocalEngine(Protocol):
    """What the dispatcher needs of this process's delivery engine (`webhook/claiming.py`)."""

    owner: str
    lease_ms: int

    async def wait_for_room(self, timeout: float) -> None:
        """Return once it could take a batch, or after `timeout` seconds."""

    def room(self) -> int:
        """How many fresh deliveries it would take now."""

    def reserve(self, wanted: int) -> int:
        """Take room for up to `wanted` fresh deliveries; returns how many it will take."""

    def unreserve(self, count: int) -> None:
        """Give back room taken by `reserve` that will not be used (the batch failed)."""

    def accept(self, jobs: list[tuple[Any, Any, bytes]], leased_at: float) -> None:
        """Committed deliveries leased to it (at loop time `leased_at`), ready to send: each
        (claimed delivery, its subscription, body)."""


@dataclass
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    keys: ServiceKeys
    tokens: TokenService
    key_cache: KeyCache
    broker: Broker
    limiter: RateLimiter
    load_plan: PlanLoader
    # long-lived parts set by the features that own them
    session_lookup: SessionLookup | None = None  # dashboard sessions, read by the gateway
    stream_hub: StreamHubPart | None = None
    inbound: InboundPart | None = None
    publisher: Batcher[Any, Any] | None = None  # concurrent publishes (PostgreSQL)
    subscription_cache: SubscriptionCachePart | None = None
    dispatcher: Stoppable | None = None
    delivery_engine: Stoppable | None = None
    # the engine the dispatcher hands fresh deliveries to (the first of several, in tests)
    local_engine: LocalEngine | None = None
    # every delivery engine's wake-up, and the one call that wakes them all (None without)
    delivery_wakers: list[Callable[[], None]] = field(default_factory=list)
    delivery_wakeup: Callable[[], object] | None = None
    load_limits: LimitsLoader | None = None
    _plans: TtlCache[str, str] = field(default_factory=lambda: TtlCache(10.0, 50_000))
    _limits: TtlCache[str, Stored | None] = field(init=False)
    # tenant id -> (the stored record, its effective limits), see `tenant_limits`
    _effective: dict[str, tuple[Stored | None, TenantLimits]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._limits = TtlCache(self.settings.tenant_limits_cache_seconds, 50_000)

    async def tenant_plan(self, tenant_id: str) -> str | None:
        """The tenant's plan (cached 10 s, one load per miss); None if there is no such tenant."""

        async def load() -> str:
            return await self.load_plan(self.db, tenant_id)

        return await self._plans.get(tenant_id, load) or None

    def forget_plan(self, tenant_id: str) -> None:
        self._plans.drop(tenant_id)
        self._limits.drop(tenant_id)

    async def stored_limits(self, tenant_id: str) -> Stored | None:
        """The tenant's plan and limit overrides (cached `CAUSEFLOW_TENANT_LIMITS_CACHE_SECONDS`,
        one load per miss); None if there is no such tenant."""
        loader = self.load_limits
        if loader is None:
            return Stored(await self.tenant_plan(tenant_id) or self.settings.default_plan)

        async def load() -> Stored | None:
            return await loader(self.db, tenant_id)

        return await self._limits.get(tenant_id, load)

    async def tenant_limits(self, tenant_id: str) -> TenantLimits:
        """The tenant's effective limits (the defaults for an unknown tenant): worked out once
        for each stored record the cache hands out (a reload or a drop hands out another)."""
        stored = await self.stored_limits(tenant_id)
        found = self._effective.get(tenant_id)
        if found is not None and found[0] is stored:
            return found[1]
        limits = effective(self.settings, stored)
        if len(self._effective) >= 50_000:
            self._effective.clear()
        self._effective[tenant_id] = (stored, limits)
        return limits

    def forget_limits(self, tenant_id: str) -> None:
        """Drop this process's copy of the tenant's limits (after a change)."""
        self._limits.drop(tenant_id)
        self._plans.drop(tenant_id)

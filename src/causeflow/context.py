"""`AppContext`: the process-wide parts the composition root builds and routes reach.

Built once by `app.create_app` (or by CLI commands) and kept on `app.state.ctx`; dependencies
hand it to routers. Nothing here does work at import time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from causeflow.auth.apikeys import KeyCache
from causeflow.auth.keys import ServiceKeys
from causeflow.auth.tokens import TokenService
from causeflow.cache import TtlCache
from causeflow.clock import Clock
from causeflow.db.engine import Database
from causeflow.event.broker import Broker
from causeflow.ratelimit.limiter import RateLimiter
from causeflow.settings import Settings

# A tenant's plan, "" when there is no such tenant (the tenant feature's `load_plan`).
PlanLoader = Callable[[Database, str], Awaitable[str]]


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
    # long-lived components registered by features (stream hub, delivery engine, ...)
    components: dict[str, Any] = field(default_factory=dict)
    _plans: TtlCache[str, str] = field(default_factory=lambda: TtlCache(10.0, 50_000))

    async def tenant_plan(self, tenant_id: str) -> str | None:
        """The tenant's plan (cached 10 s, one load per miss); None if there is no such tenant."""

        async def load() -> str:
            return await self.load_plan(self.db, tenant_id)

        return await self._plans.get(tenant_id, load) or None

    def forget_plan(self, tenant_id: str) -> None:
        self._plans.drop(tenant_id)

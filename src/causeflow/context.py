"""`AppContext`: the process-wide parts the composition root builds and routes reach.

Built once by `app.create_app` (or by CLI commands) and kept on `app.state.ctx`; dependencies
hand it to routers. Nothing here does work at import time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from causeflow.api.ratelimit import RateLimiter
from causeflow.auth.apikeys import KeyCache
from causeflow.auth.keys import ServiceKeys
from causeflow.auth.tokens import TokenService
from causeflow.clock import Clock
from causeflow.db.engine import Database
from causeflow.event.broker import Broker
from causeflow.settings import Settings


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
    # long-lived components registered by features (stream hub, delivery engine, ...)
    components: dict[str, Any] = field(default_factory=dict)
    _plans: dict[str, tuple[str, float]] = field(default_factory=dict)

    async def tenant_plan(self, tenant_id: str) -> str | None:
        """The tenant's plan (cached 10 s); None if there is no such tenant."""
        from causeflow.tenant.tables import tenants

        hit = self._plans.get(tenant_id)
        now = time.monotonic()
        if hit is not None and now - hit[1] < 10:
            return hit[0] or None
        async with self.db.read() as conn:
            plan = (
                await conn.execute(select(tenants.c.plan).where(tenants.c.id == tenant_id))
            ).scalar()
        if len(self._plans) > 50000:
            self._plans.clear()
        self._plans[tenant_id] = (plan or "", now)
        return plan

    def forget_plan(self, tenant_id: str) -> None:
        self._plans.pop(tenant_id, None)

"""The service in-process for API tests: a migrated database, the app's lifespan, an httpx
client on the ASGI app, and helpers to provision tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from causeflow.app import create_app
from causeflow.clock import Clock
from causeflow.context import AppContext
from causeflow.db.migrate import migrate
from causeflow.settings import Settings
from causeflow.tenant.service import Provisioned, provision

from .keys import pg_key_settings


def make_settings(tmp_path: Path, database_url: str = "", **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "rate_limit_per_minute": 0,
        "webhook_allow_cidrs": "127.0.0.0/8,::1/128",
        "webhook_allow_http": True,
        **pg_key_settings(database_url),
    }
    base.update(overrides)
    return Settings(**base)


@dataclass
class Tenant:
    id: str
    api_key: str
    ingest_key: str
    webhook_secret: str
    admin_token: str

    @classmethod
    def of(cls, p: Provisioned) -> Tenant:
        return cls(p.tenant["id"], p.api_key, p.ingest_key, p.webhook_secret, p.admin_token)

    @property
    def key_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


@dataclass
class Service:
    ctx: AppContext
    client: httpx.AsyncClient

    async def tenant(self, name: str = "acme", plan: str | None = None) -> Tenant:
        return Tenant.of(await provision(self.ctx, name=name, plan=plan))

    def token(self, tenant: Tenant, role: str = "admin", ttl: int = 3600) -> dict[str, str]:
        tok = self.ctx.tokens.mint(
            tenant_id=tenant.id,
            role=role,
            now=self.ctx.clock.now(),
            ttl=ttl,
            email=f"{role}@example.com",
        )
        return {"Authorization": f"Bearer {tok}"}


@asynccontextmanager
async def running_service(settings: Settings, clock: Clock | None = None) -> AsyncIterator[Service]:
    await migrate(settings)
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://cf.test") as client:
            yield Service(app.state.ctx, client)

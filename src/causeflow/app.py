"""`create_app(settings)`: the composition root. Nothing happens at import time.

The lifespan opens the database, loads the service keys (from the environment or the key file,
never from the database: `auth/keys.py`), starts the broker (LISTEN on
PostgreSQL), the rate-limit sync and every registered component (stream hub, delivery engine,
background jobs), and stops them in reverse order on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from causeflow import __version__
from causeflow import schema as _schema  # noqa: F401  # every feature's tables, registered
from causeflow.api.access import AccessLog
from causeflow.api.docs import install_docs
from causeflow.api.errors import error_response, install_error_handlers
from causeflow.api.gateway import Gateway
from causeflow.api.idempotency import IdempotencyMiddleware, IdempotentReplay, replay_response
from causeflow.api.responses import JSONResponse
from causeflow.auth.apikeys import KeyCache
from causeflow.auth.jwks import jwks_keys
from causeflow.auth.keys import load_service_keys
from causeflow.auth.tokens import TokenService
from causeflow.clock import Clock
from causeflow.context import AppContext
from causeflow.db.engine import Database
from causeflow.event.broker import Broker
from causeflow.incident.service import register_effects as register_incident_effects
from causeflow.ingest.router import answer_inbound
from causeflow.metrics import METRICS_REFUSED, bearer_matches
from causeflow.publish.router import answer_publish
from causeflow.publish.service import register_effect
from causeflow.ratelimit.limiter import RateLimiter
from causeflow.roles import start_roles
from causeflow.settings import Settings
from causeflow.stream.front import StreamFront
from causeflow.tenant.plans import load_limits, load_plan


def build_routers(app: FastAPI) -> None:
    for router in routers():
        app.include_router(router)


def routers() -> list[Any]:
    """Every capability's router. Routes are matched in this order, so the hot paths (inbound
    alerts, events, the stream) come first and the dashboard last."""
    from causeflow.apikeys.router import router as keys_router
    from causeflow.approval.router import router as approval_router
    from causeflow.dashboard.router import router as dashboard_router
    from causeflow.incident.router import router as incidents_router
    from causeflow.ingest.router import router as inbound_router
    from causeflow.integration.router import router as integration_router
    from causeflow.publish.router import router as events_router
    from causeflow.remediation.router import router as remediation_router
    from causeflow.stream.router import router as stream_router
    from causeflow.tenant.router import router as tenants_router
    from causeflow.trigger.router import router as trigger_router
    from causeflow.user.router import router as users_router
    from causeflow.webhook.router import router as webhook_router

    return [
        inbound_router,
        events_router,
        stream_router,
        webhook_router,
        incidents_router,
        remediation_router,
        approval_router,
        integration_router,
        trigger_router,
        tenants_router,
        users_router,
        keys_router,
        dashboard_router,
    ]


async def build_context(settings: Settings, clock: Clock | None = None) -> AppContext:
    clock = clock or Clock()
    db = Database(settings)
    try:
        keys = await load_service_keys(db, clock.now_ms())
    except BaseException:
        await db.dispose()
        raise
    tokens = TokenService(
        keys.jwt_secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        tenant_claim=settings.jwt_tenant_claim,
        jwks_file=settings.jwks_file,
        jwks=jwks_keys(settings),
    )
    broker = Broker()
    db.commit_listeners.append(broker.committed)
    return AppContext(
        settings=settings,
        db=db,
        clock=clock,
        keys=keys,
        tokens=tokens,
        key_cache=KeyCache(db),
        broker=broker,
        limiter=RateLimiter(db, settings.rate_limit_sync_seconds),
        load_plan=load_plan,
        load_limits=load_limits,
    )


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await build_context(settings, clock)
        app.state.ctx = ctx
        await ctx.broker.start_listening(ctx.db)  # PostgreSQL: other processes' commits
        await ctx.limiter.start()
        roles = {"api", "worker"} if settings.workers_in_process else {"api"}
        stops = await start_roles(ctx, roles)
        try:
            yield
        finally:
            for stop in reversed(stops):
                with contextlib.suppress(Exception):
                    await stop()
            await ctx.limiter.stop()
            await ctx.broker.stop()
            await ctx.db.dispose()

    app = FastAPI(
        title="CauseFlow",
        version=__version__,
        description="Alerts in, incidents and their events out: SSE stream and signed webhooks.",
        lifespan=lifespan,
        docs_url=None,  # the API reference pages are served offline by `install_docs`
        redoc_url=None,
        default_response_class=JSONResponse,
        # The service makes its own server span (api/access.py, tracing/spans.py) and its own
        # metrics (`/metrics`); the framework's would check the global OpenTelemetry providers
        # on every request and, if one were set, report each request twice.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    install_docs(app)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        """A browser pointed at the service lands on the dashboard."""
        return RedirectResponse("/ui", status_code=307)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> Response:
        ctx: AppContext = app.state.ctx
        try:
            async with asyncio.timeout(2):
                async with ctx.db.read() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception:
            return error_response(503, "service_unavailable", "the database is unreachable")
        return JSONResponse({"status": "ready", "database": ctx.db.dialect.name})

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        token = settings.metrics_token
        if token and not bearer_matches(token, request.headers.get("authorization")):
            return error_response(
                401,
                METRICS_REFUSED["error"],
                METRICS_REFUSED["message"],
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    build_routers(app)
    register_incident_effects(register_effect)
    app.add_exception_handler(IdempotentReplay, replay_response)
    app.add_middleware(IdempotencyMiddleware, state=app.state)
    app.add_middleware(StreamFront, state=app.state)  # the stream, served past the framework
    fast_routes = {("POST", "/v1/events"): answer_publish}
    app.add_middleware(Gateway, state=app.state, inbound=answer_inbound, fast_routes=fast_routes)
    app.add_middleware(AccessLog, routes=app.router.routes, enabled=settings.access_log)
    return app

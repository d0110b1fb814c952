"""Long-running parts of a process, chosen by role in one place (the composition root).

`serve` runs the `api` components, plus the `worker` ones on SQLite (one process owns the
file); `causeflow worker` runs only the `worker` ones. Each component's `start(ctx)` returns an
async `stop()` (`causeflow.runtime`).
"""

from __future__ import annotations

from causeflow.context import AppContext
from causeflow.runtime import Component, Stop


def all_components() -> list[Component]:
    """The explicit list; features add theirs here."""
    from causeflow.approval.expiry import component as approval_expiry
    from causeflow.dashboard.sessions import component as dashboard_sessions
    from causeflow.ingest.runtime import inbound_component
    from causeflow.retention import component as retention
    from causeflow.stream.hub import start_stream_hub
    from causeflow.webhook.dispatcher import component as webhook_dispatcher
    from causeflow.webhook.engine import delivery_component

    return [
        approval_expiry(),
        webhook_dispatcher(),
        delivery_component(),
        retention(),
        inbound_component(),
        Component("stream_hub", frozenset({"api"}), start_stream_hub),
        dashboard_sessions(),
        Component("jwks_refresh", frozenset({"api"}), start_jwks_refresh),
    ]


async def start_jwks_refresh(ctx: AppContext) -> Stop:
    """Keeps the external identity provider's keys fresh in processes that serve the API."""
    keys = ctx.tokens.jwks
    if keys is None:

        async def nothing() -> None:
            return None

        return nothing
    keys.start()
    return keys.stop


async def start_roles(ctx: AppContext, roles: set[str]) -> list[Stop]:
    stops: list[Stop] = []
    for component in all_components():
        if component.roles & roles:
            stops.append(await component.start(ctx))
    return stops

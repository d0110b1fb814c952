"""Turn a request's credentials into a `Principal` (or a 401), for the API gateway.

Credentials: `Authorization: Bearer <jwt | cflo_ key>`, `X-API-Key: cflo_…`, and on the stream
endpoint `?token=<stream ticket>`; the dashboard adds its session cookie. No credential at all
is not an error here (public routes exist); the route's dependency answers 401.

A token names its tenant in a claim, so a tenant of the service is checked for: one naming no
tenant that exists (an identity provider's token for an organisation never provisioned here,
or a token outliving its tenant) is refused like any other invalid token. The check reads the
per-process tenant cache the gateway reads the plan from, so it adds no database round trip.
"""

from __future__ import annotations

from causeflow.auth.apikeys import principal_for_key
from causeflow.auth.crypto import looks_like_api_key
from causeflow.auth.principal import Principal
from causeflow.context import AppContext, SessionLookup
from causeflow.errors import Unauthorized


async def principal_from_key(ctx: AppContext, key: str) -> Principal:
    if not looks_like_api_key(key):
        raise Unauthorized("invalid API key", code="invalid_api_key")
    record = await ctx.key_cache.lookup(key)
    if record is None:
        raise Unauthorized("invalid API key", code="invalid_api_key")
    return principal_for_key(record)


async def principal_from_token(ctx: AppContext, token: str, now: float) -> Principal:
    """The principal of a JWT (the service's own or an identity provider's)."""
    await ctx.tokens.fetch_key_for(token)
    return await existing_tenant(ctx, ctx.tokens.principal_from_jwt(token, now))


async def existing_tenant(ctx: AppContext, principal: Principal) -> Principal:
    """`principal`, if the tenant it names is one of the service's (or it names none)."""
    if principal.tenant_id is not None and await ctx.tenant_plan(principal.tenant_id) is None:
        raise Unauthorized("the token names no tenant of this service", code="invalid_token")
    return principal


async def resolve_principal(
    ctx: AppContext,
    headers: dict[str, str],
    query_token: str | None,
    session_id: str | None = None,
    session_lookup: SessionLookup | None = None,
) -> Principal | None:
    now = ctx.clock.now()
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise Unauthorized("Authorization must be 'Bearer <token>'", code="invalid_token")
        if value.startswith("cflo_"):
            return await principal_from_key(ctx, value)
        return await principal_from_token(ctx, value, now)
    api_key = headers.get("x-api-key")
    if api_key:
        return await principal_from_key(ctx, api_key.strip())
    if query_token:
        return await existing_tenant(ctx, ctx.tokens.principal_from_ticket(query_token, now))
    if session_id and session_lookup is not None:
        return await session_lookup(session_id)
    return None

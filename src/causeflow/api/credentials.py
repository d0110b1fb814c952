"""Turn a request's credentials into a `Principal` (or a 401), for the API gateway.

Credentials: `Authorization: Bearer <jwt | cflo_ key>`, `X-API-Key: cflo_…`, and on the stream
endpoint `?token=<stream ticket>`; the dashboard adds its session cookie. No credential at all
is not an error here (public routes exist); the route's dependency answers 401.
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
        await ctx.tokens.fetch_key_for(value)
        return ctx.tokens.principal_from_jwt(value, now)
    api_key = headers.get("x-api-key")
    if api_key:
        return await principal_from_key(ctx, api_key.strip())
    if query_token:
        return ctx.tokens.principal_from_ticket(query_token, now)
    if session_id and session_lookup is not None:
        return await session_lookup(session_id)
    return None

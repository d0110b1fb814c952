"""Who may post to `/v1/webhooks/{tenantId}/{provider}`: an `alerts:ingest` key of that tenant.

Monitoring tools put the key wherever they can: `X-API-Key`, `Authorization: Bearer`, Basic
auth (the key as password) or `?apiKey=` for tools that can only set a URL. The gateway skips
credential resolution on this path, so this module is the whole check. Query credentials must
never reach a log: a query string is only ever written through `logtext.redact_query` (which
finds `apiKey` however its name is spelled on the wire).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from urllib.parse import parse_qs

from causeflow.auth.apikeys import KeyCache, KeyRecord
from causeflow.auth.crypto import looks_like_api_key
from causeflow.errors import Forbidden, Unauthorized
from causeflow.logtext import redact_query

INGEST_SCOPE = "alerts:ingest"
QUERY_KEY = "apiKey"

__all__ = ["INGEST_SCOPE", "QUERY_KEY", "authenticate", "key_from_request", "redact_query"]


def _from_basic(value: str) -> str | None:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, _, password = decoded.partition(":")
    # The key goes in the password; a tool that only has one field may put it in the user name.
    return password or (user if looks_like_api_key(user) else None)


def key_from_request(headers: Mapping[str, str], query_string: str) -> str | None:
    """The API key from the first place that carries one, or None (lower-case header names)."""
    api_key = headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    if value.strip():
        if scheme.lower() == "bearer":
            return value.strip()
        if scheme.lower() == "basic":
            return _from_basic(value)
    if query_string:
        values = parse_qs(query_string).get(QUERY_KEY)
        if values and values[0].strip():
            return values[0].strip()
    return None


async def authenticate(
    cache: KeyCache, tenant_id: str, headers: Mapping[str, str], query_string: str
) -> KeyRecord:
    """The caller's key record; 401 without a key of this tenant, 403 without the scope."""
    key = key_from_request(headers, query_string)
    if key is None:
        raise Unauthorized(
            "an API key with the alerts:ingest scope is required "
            "(X-API-Key, Bearer, Basic password or ?apiKey=)"
        )
    record = await cache.lookup(key) if looks_like_api_key(key) else None
    # Another tenant's key is answered exactly like an unknown one: nothing is revealed.
    if record is None or record.tenant_id != tenant_id:
        raise Unauthorized("invalid API key for this tenant", code="invalid_api_key")
    if INGEST_SCOPE not in record.scopes:
        raise Forbidden("this API key lacks the alerts:ingest scope")
    return record

"""One delivery as it leaves the process: the subscription's client certificate and auth applied
to the delivery client's request.

`Egress.send` adds `Authorization: Bearer ...` (the fixed token, or the OAuth2 token of
`oauth.OAuthTokens`) and presents the client certificate (`clienttls.ClientContexts`), then
sends with the shared `Sender` (SSRF vetting and the proxy are its business). A token that
cannot be had is a failed attempt with an `auth_error: ...`, retried like any other; a 401
from the receiver drops the cached OAuth2 token, so the next attempt fetches a new one.
The request timeout bounds the whole attempt, the wait for a token included (the lease and
the shutdown grace are sized by it): the delivery gets what the token left of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from causeflow.webhook.clienttls import ClientContexts
from causeflow.webhook.deliveryauth import DeliveryAuth
from causeflow.webhook.oauth import OAuthTokens, TokenError, bearer
from causeflow.webhook.sender import Sender, SendResult

if TYPE_CHECKING:
    from causeflow.webhook.subscriptions import Subscription


class Egress:
    def __init__(self, sender: Sender, *, cafile: str | None = None) -> None:
        self.sender = sender
        self.contexts = ClientContexts(cafile)
        self.tokens = OAuthTokens(sender.send)

    async def send(self, sub: Subscription, body: bytes, headers: Mapping[str, str]) -> SendResult:
        started = time.monotonic()
        budget = self.sender.timeout_seconds
        auth = sub.auth
        timeout: float | None = None
        if auth is not None:
            try:
                token = auth.token if auth.type == "bearer" else await self._oauth(sub.id, auth)
            except TokenError as exc:
                return SendResult(None, (time.monotonic() - started) * 1000.0, b"", str(exc))
            # it replaces an extra header of that name, however spelt
            kept = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers = {**kept, **bearer(token or "")}
            if auth.type == "oauth2" and budget > 0:
                timeout = budget - (time.monotonic() - started)
                if timeout <= 0:
                    return SendResult(None, (time.monotonic() - started) * 1000.0, b"", "timeout")
        context = self.contexts.get(sub.id, sub.client_tls) if sub.client_tls else None
        result = await self.sender.send(
            sub.url, body, headers, ssl_context=context, timeout=timeout
        )
        if result.status == 401 and auth is not None and auth.type == "oauth2":
            self.tokens.drop(sub.id)
        return result

    async def _oauth(self, subscription_id: str, auth: DeliveryAuth) -> str:
        """The OAuth2 token, waited for at most the request timeout."""
        budget = self.sender.timeout_seconds
        try:
            async with asyncio.timeout(budget if budget > 0 else None):
                return await self.tokens.token(subscription_id, auth)
        except TimeoutError as exc:
            raise TokenError("auth_error: token endpoint: timeout") from exc

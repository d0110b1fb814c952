"""How a subscription's deliveries authenticate: a fixed bearer token or OAuth2 client
credentials. `DeliveryAuth` is the stored (sealed) form; `check_delivery_auth` is the
create/patch rule; `auth_view` is what reads show (type, token URL and client id: never a
token or a secret).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from causeflow.errors import ValidationFailed
from causeflow.webhook.ssrf import IPNetwork, SsrfBlocked, check_url

# what may follow "Bearer " (RFC 6750 b64token, widened to any visible ASCII)
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")  # the whole value (fullmatch): `$` lets a final \n by


def is_bearer_token(text: str) -> bool:
    """True when `text` may follow `Bearer ` in a header: visible ASCII, no space."""
    return bool(_TOKEN_RE.fullmatch(text))


@dataclass(frozen=True, slots=True)
class DeliveryAuth:
    type: str  # "bearer" | "oauth2"
    token: str | None = None
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scope: str | None = None
    audience: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DeliveryAuth:
        return cls(**doc)


def _token_url(url: str, *, allow_http: bool, allow: Sequence[IPNetwork]) -> str:
    try:
        check_url(url, allow_http=allow_http, allow=allow)
    except SsrfBlocked as exc:
        raise ValidationFailed.at("auth.tokenUrl", f"refused destination: {exc.reason}") from exc
    except ValueError as exc:
        raise ValidationFailed.at("auth.tokenUrl", str(exc)) from exc
    return url


def check_delivery_auth(
    body: dict[str, Any], *, allow_http: bool, allow: Sequence[IPNetwork]
) -> DeliveryAuth:
    """The create/patch rule for a validated `auth` body (its shape is the schema's)."""
    if body["type"] == "bearer":
        if not is_bearer_token(body["token"]):
            raise ValidationFailed.at("auth.token", "must be visible ASCII without spaces")
        return DeliveryAuth(type="bearer", token=body["token"])
    return DeliveryAuth(
        type="oauth2",
        token_url=_token_url(body["tokenUrl"], allow_http=allow_http, allow=allow),
        client_id=body["clientId"],
        client_secret=body["clientSecret"],
        scope=body.get("scope"),
        audience=body.get("audience"),
    )


def auth_view(auth: DeliveryAuth) -> dict[str, Any]:
    """What reads show: never the token or the client secret."""
    return {"type": auth.type, "tokenUrl": auth.token_url, "clientId": auth.client_id}

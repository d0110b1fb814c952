"""JWTs: the service's own HS256 tokens, stream tickets, and optional JWKS-verified tokens.

Algorithms are always named explicitly when decoding, so `alg: none` and algorithm confusion
are refused; `iss`, `aud` and `exp` are required.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import jwt

from causeflow.auth.jwks import JwksKeys, parse_key_set
from causeflow.auth.principal import OWN_ROLES, ROLES, Principal
from causeflow.errors import Unauthorized

STREAM_AUDIENCE = "causeflow-stream"
# Portal links (`/ui/portal?link=`): a tenant's dashboard without an API key, for one role.
PORTAL_AUDIENCE = "causeflow-portal"
PORTAL_ROLES = ("viewer", "admin")
# The claim naming the tenant in the service's own tokens and tickets, whatever claim
# `tenant_claim` reads from an external identity provider's tokens.
OWN_TENANT_CLAIM = "tenant_id"
# The key type each accepted external algorithm is verified with.
_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}


@dataclass(frozen=True)
class PortalLink:
    """What a verified portal link grants: one tenant, one role, once, until `expires_at`."""

    tenant_id: str
    role: str  # "viewer" | "admin"
    jti: str
    expires_at: int  # unix seconds
    # the API key it was minted with: the link, and the sessions it opens, stand only while
    # that key does (None: minted with a token)
    key_id: str | None = None


class TokenService:
    def __init__(
        self,
        secret: str,
        *,
        issuer: str = "causeflow",
        audience: str = "causeflow-api",
        tenant_claim: str = "tenant_id",
        jwks_url: str = "",
        jwks_file: str = "",
        jwks: JwksKeys | None = None,
    ) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.tenant_claim = tenant_claim
        # Keys fetched from a JWKS URL (in the background, never on the request's path).
        self.jwks: JwksKeys | None = jwks or (JwksKeys(jwks_url) if jwks_url else None)
        self._jwks_keys: dict[str, Any] = {}
        if jwks_file:
            with open(jwks_file, encoding="utf-8") as fh:
                self._jwks_keys = parse_key_set(fh.read())

    def mint(
        self,
        *,
        tenant_id: str,
        role: str,
        now: float,
        ttl: int,
        subject: str | None = None,
        email: str | None = None,
    ) -> str:
        if role not in OWN_ROLES:
            raise ValueError(f"role must be one of {', '.join(OWN_ROLES)}")
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject or f"usr_{tenant_id}",
            "email": email,
            OWN_TENANT_CLAIM: tenant_id,
            "roles": [role],
            "iat": int(now),
            "exp": int(now) + ttl,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def mint_platform_admin(self, *, now: float, ttl: int) -> str:
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "platform",
            "roles": ["platform_admin"],
            "iat": int(now),
            "exp": int(now) + ttl,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def mint_ticket(self, principal: Principal, *, now: float, ttl: int) -> str:
        """A stream ticket: valid only for the stream endpoint, reusable until it expires.

        It names what minted it, and stands only while that does: the API key (`kid_ref`),
        the dashboard session (`sid`), and never later than the minting token's expiry.
        """
        exp = int(now) + ttl
        if principal.expires_at is not None:
            exp = min(exp, int(principal.expires_at))
        claims = {
            "iss": self.issuer,
            "aud": STREAM_AUDIENCE,
            "sub": principal.subject,
            OWN_TENANT_CLAIM: principal.tenant_id,
            "kid_ref": principal.key_id,
            "sid": principal.session_id,
            "via": principal.kind,
            "iat": int(now),
            "exp": exp,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def mint_portal_link(
        self,
        *,
        tenant_id: str,
        role: str,
        now: float,
        ttl: int,
        minted_by: str,
        key_id: str | None = None,
    ) -> tuple[str, PortalLink]:
        """A portal link's token: signed like every token of the service, for the portal's
        audience only, with a random `jti` that its first use records (single use)."""
        if role not in PORTAL_ROLES:
            raise ValueError(f"role must be one of {', '.join(PORTAL_ROLES)}")
        link = PortalLink(tenant_id, role, secrets.token_urlsafe(16), int(now) + ttl, key_id)
        claims = {
            "iss": self.issuer,
            "aud": PORTAL_AUDIENCE,
            "sub": minted_by,
            OWN_TENANT_CLAIM: tenant_id,
            "role": role,
            "iat": int(now),
            "exp": link.expires_at,
            "jti": link.jti,
            "kid_ref": key_id,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), link

    def portal_link(self, token: str, now: float) -> PortalLink:
        """The verified link (raises Unauthorized: tampered, expired, another audience)."""
        claims = self._decode(token, PORTAL_AUDIENCE, now, own_only=True)
        tenant_id, role, jti = (claims.get(k) for k in (OWN_TENANT_CLAIM, "role", "jti"))
        if not isinstance(tenant_id, str) or not tenant_id or role not in PORTAL_ROLES:
            raise Unauthorized("invalid portal link", code="invalid_token")
        if not isinstance(jti, str) or not 16 <= len(jti) <= 64:
            raise Unauthorized("invalid portal link", code="invalid_token")
        key_id = _str_or_none(claims.get("kid_ref"))
        return PortalLink(tenant_id, str(role), jti, int(claims["exp"]), key_id)

    def _decode(
        self, token: str, audience: str, now: float, *, own_only: bool = False
    ) -> dict[str, Any]:
        """The verified claims; with `own_only`, only a token the service signed (HS256)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token", code="invalid_token") from exc
        alg = header.get("alg")
        # Expiry is checked against the service's clock (injectable), not PyJWT's.
        options: Any = {"require": ["exp", "iss", "aud"], "verify_exp": False}
        if own_only and alg != "HS256":
            raise Unauthorized(
                "invalid token: only the service's own tokens are accepted here",
                code="invalid_token",
            )
        try:
            claims = self._verify(token, header, alg, audience, options)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from exc
        except (TypeError, ValueError) as exc:
            # A header the keys cannot serve: an algorithm of another key type than the key's
            # (an RS256 token relabelled ES256), or a key id that is not a string.
            raise Unauthorized(
                "invalid token: its header does not fit the signing key", code="invalid_token"
            ) from exc
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= now:
            raise Unauthorized("token expired", code="token_expired")
        return claims

    def _verify(
        self, token: str, header: dict[str, Any], alg: Any, audience: str, options: Any
    ) -> dict[str, Any]:
        if alg == "HS256":
            return jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=audience,
                issuer=self.issuer,
                options=options,
            )
        if alg in ("RS256", "ES256") and (self.jwks is not None or self._jwks_keys):
            key = self._jwks_key(header, alg)
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=self.issuer,
                options=options,
            )
        raise jwt.InvalidAlgorithmError(f"token algorithm {alg!r} is not accepted")

    def _jwks_key(self, header: dict[str, Any], alg: str) -> Any:
        """The key the header names, if it is one for `alg`: an RS256 token naming an EC key
        (or ES256 an RSA key, or an EC key of another curve than P-256) is refused here rather
        than handed to a verifier of another key type."""
        kid = header.get("kid")
        if isinstance(kid, str):
            known = self._jwks_keys.get(kid) or (self.jwks.get(kid) if self.jwks else None)
            if known is not None:
                if known.key_type != _KEY_TYPES[alg] or known.algorithm_name != alg:
                    raise jwt.InvalidAlgorithmError(f"the key {kid!r} is not a key for {alg}")
                return known.key
        raise jwt.InvalidTokenError("unknown key id")

    async def fetch_key_for(self, token: str) -> None:
        """Before verifying `token`: if it names a JWKS key not held yet, let the key set be
        fetched when a fetch is allowed (without blocking the loop). Never raises; verifying
        then refuses a token whose key is still unknown."""
        if self.jwks is None:
            return
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return
        kid = header.get("kid")
        if header.get("alg") in ("RS256", "ES256") and isinstance(kid, str) and kid:
            if kid not in self._jwks_keys:
                await self.jwks.ensure(kid)

    def principal_from_jwt(self, token: str, now: float) -> Principal:
        claims = self._decode(token, self.audience, now)
        # Verified, so the header is authentic: only HS256 is checked against the service's own
        # secret; anything else was signed by an external identity provider.
        external = jwt.get_unverified_header(token).get("alg") != "HS256"
        roles = claims.get("roles") or []
        if isinstance(roles, str):
            roles = [roles]
        if not isinstance(roles, list):
            roles = []
        # The platform admin is minted only by the service (`causeflow token --platform-admin`);
        # an external token claiming it is read like any other: a tenant's user with the tenant
        # roles it carries (without a tenant claim it is refused below).
        if "platform_admin" in roles and not external:
            return Principal(
                kind="platform_admin",
                subject="platform",
                tenant_id=None,
                roles=frozenset({"platform_admin"}),
                expires_at=float(claims["exp"]),
            )
        # The configured claim is the identity provider's; the service's own tokens always name
        # their tenant in `tenant_id`, whatever that setting says.
        tenant_id = claims.get(self.tenant_claim if external else OWN_TENANT_CLAIM)
        if not isinstance(tenant_id, str) or not tenant_id:
            raise Unauthorized("token names no tenant", code="invalid_token")
        return Principal(
            kind="user",
            subject=str(claims.get("sub") or ""),
            tenant_id=tenant_id,
            roles=frozenset(r for r in roles if r in (ROLES if external else OWN_ROLES)),
            expires_at=float(claims["exp"]),
            email=claims.get("email"),
            external=external,
        )

    def principal_from_ticket(self, token: str, now: float) -> Principal:
        # Only the service mints tickets: an identity provider's token is never one, whatever
        # its audience says.
        claims = self._decode(token, STREAM_AUDIENCE, now, own_only=True)
        tenant_id = claims.get(OWN_TENANT_CLAIM)
        if not isinstance(tenant_id, str) or not tenant_id:
            raise Unauthorized("ticket names no tenant", code="invalid_token")
        return Principal(
            kind="ticket",
            subject=str(claims.get("sub") or ""),
            tenant_id=tenant_id,
            expires_at=float(claims["exp"]),
            key_id=_str_or_none(claims.get("kid_ref")),
            session_id=_str_or_none(claims.get("sid")),
        )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

"""Portal links' tokens and the read-only `viewer` role (pure: no database, no network)."""

from __future__ import annotations

import jwt
import pytest
from pydantic import ValidationError

from causeflow.auth.principal import ROLES, Action, Principal, allows
from causeflow.auth.tokens import PORTAL_AUDIENCE, TokenService
from causeflow.errors import Unauthorized
from causeflow.settings import Settings

pytestmark = pytest.mark.unit

SECRET = "s" * 48
NOW = 1_700_000_000.0  # in the past: PyJWT refuses an `iat` in its future


@pytest.fixture
def tokens() -> TokenService:
    return TokenService(SECRET)


def test_a_link_round_trips_with_its_tenant_role_and_jti(tokens: TokenService) -> None:
    token, link = tokens.mint_portal_link(
        tenant_id="ten_a", role="viewer", now=NOW, ttl=300, minted_by="key_1"
    )
    assert tokens.portal_link(token, NOW + 299) == link
    assert (link.tenant_id, link.role, link.expires_at) == ("ten_a", "viewer", int(NOW) + 300)
    other, second = tokens.mint_portal_link(
        tenant_id="ten_a", role="viewer", now=NOW, ttl=300, minted_by="key_1"
    )
    assert other != token and second.jti != link.jti  # every link its own jti
    claims = jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        audience=PORTAL_AUDIENCE,
        options={"verify_exp": False},  # the service reads expiry on its own clock
    )
    assert claims["iss"] == "causeflow" and claims["sub"] == "key_1"


def test_a_link_is_refused_at_its_expiry_and_with_another_secret(tokens: TokenService) -> None:
    token, _ = tokens.mint_portal_link(
        tenant_id="ten_a", role="admin", now=NOW, ttl=60, minted_by="platform"
    )
    with pytest.raises(Unauthorized):
        tokens.portal_link(token, NOW + 60)
    with pytest.raises(Unauthorized):
        TokenService("t" * 48).portal_link(token, NOW)
    with pytest.raises(ValueError):
        tokens.mint_portal_link(tenant_id="ten_a", role="member", now=NOW, ttl=60, minted_by="x")


def test_tokens_of_other_audiences_are_no_links_and_links_no_api_tokens(
    tokens: TokenService,
) -> None:
    api = tokens.mint(tenant_id="ten_a", role="admin", now=NOW, ttl=60)
    with pytest.raises(Unauthorized):
        tokens.portal_link(api, NOW)
    link, _ = tokens.mint_portal_link(
        tenant_id="ten_a", role="admin", now=NOW, ttl=60, minted_by="x"
    )
    with pytest.raises(Unauthorized):
        tokens.principal_from_jwt(link, NOW)


def test_viewer_reads_only_and_only_the_services_own_tokens_carry_it(
    tokens: TokenService,
) -> None:
    viewer = tokens.principal_from_jwt(
        tokens.mint(tenant_id="ten_a", role="viewer", now=NOW, ttl=60), NOW
    )
    assert viewer.roles == frozenset({"viewer"})
    granted = {action for action in Action if allows(viewer, action)}
    assert granted == {Action.READ}
    assert "viewer" not in ROLES  # not offered to people, nor read from an identity provider
    external = Principal(kind="user", subject="u", tenant_id="ten_a", external=True)
    assert not allows(external, Action.READ)


@pytest.mark.parametrize(
    "value",
    ["https://app.example.com", "https://*.example.com https://b.example.org:8443", "'self'"],
)
def test_frame_ancestors_accepts_sources(value: str) -> None:
    assert Settings(portal_frame_ancestors=value).portal_frame_ancestors == value


@pytest.mark.parametrize(
    "value",
    [
        "'none'; script-src *",
        "https://a.example.com;",
        "https://a.example.com,https://b.example.com",
        "*",
        "'unsafe-inline'",
        "javascript:alert(1)",
        "https://a.example.com\r\nX-Evil: 1",
    ],
)
def test_frame_ancestors_refuses_what_could_break_the_header(value: str) -> None:
    with pytest.raises(ValidationError):
        Settings(portal_frame_ancestors=value)


def test_portal_session_ttl_bounds() -> None:
    for bad in (0, 59, 86401):
        with pytest.raises(ValidationError):
            Settings(portal_session_ttl_seconds=bad)

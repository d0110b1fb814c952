"""CSRF tokens for the dashboard's forms.

Signed-in forms carry the session's token (kept in the `sessions` row); the sign-in form, which
has no session yet, uses a double-submit token: a random value in an HttpOnly, SameSite=Strict
cookie and the same value in the form. Tokens are compared in constant time.
"""

from __future__ import annotations

import secrets

from causeflow.auth.crypto import constant_time_equals

FIELD = "csrf_token"
LOGIN_COOKIE = "cf_login_csrf"


class CsrfRefused(Exception):
    """A state-changing request arrived without the right token (answered 403)."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, given: object) -> bool:
    if not expected or not isinstance(given, str) or not given:
        return False
    return constant_time_equals(expected, given)


def check(expected: str | None, given: object) -> None:
    if not tokens_match(expected, given):
        raise CsrfRefused("the form's security token is missing or wrong; reload the page")

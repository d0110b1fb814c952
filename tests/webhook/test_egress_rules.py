"""The pure rules of egress: the proxy setting, pinning a request to its vetted address, OAuth2
token requests and answers, and when a token is fetched again."""

from __future__ import annotations

import base64

import pytest
from yarl import URL

from causeflow.webhook.deliveryauth import DeliveryAuth
from causeflow.webhook.oauth import (
    DEFAULT_LIFETIME,
    TokenError,
    read_token,
    refresh_at,
    token_request,
)
from causeflow.webhook.proxy import parse_proxy, pin
from causeflow.webhook.sender import SendResult

pytestmark = pytest.mark.unit


def test_parse_proxy() -> None:
    assert parse_proxy("") is None
    plain = parse_proxy("http://127.0.0.1:3128")
    assert plain is not None and str(plain.url) == "http://127.0.0.1:3128"
    assert plain.authorization is None and plain.connect_headers is None
    secured = parse_proxy("http://relay:p%40ss@proxy.internal:8080/")
    assert secured is not None and str(secured.url) == "http://proxy.internal:8080"
    expected = "Basic " + base64.b64encode(b"relay:p@ss").decode()
    assert secured.connect_headers == {"Proxy-Authorization": expected}
    assert secured.headers_for(URL("http://x.example/")) == {"Proxy-Authorization": expected}
    assert secured.headers_for(URL("https://x.example/")) == {}  # sent on CONNECT instead


@pytest.mark.parametrize(
    "text",
    ["https://proxy:3128", "socks5://proxy:1080", "http://:3128", "http://proxy:3128/path", "::"],
)
def test_parse_proxy_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_proxy(text)


def test_pin_keeps_the_name_for_host_and_tls() -> None:
    https = pin(URL("https://hooks.example/in?x=1"), "93.184.216.34")
    assert str(https.url) == "https://93.184.216.34/in?x=1"
    assert https.host_header == "hooks.example" and https.server_hostname == "hooks.example"
    http = pin(URL("http://hooks.example:8080/in"), "2606:2800:220:1::1")
    assert str(http.url) == "http://[2606:2800:220:1::1]:8080/in"
    assert http.host_header == "hooks.example:8080" and http.server_hostname is None


def test_token_request() -> None:
    auth = DeliveryAuth(
        type="oauth2", token_url="https://t", client_id="a b", client_secret="x:y", scope="s1 s2"
    )
    body, headers = token_request(auth)
    assert body == b"grant_type=client_credentials&scope=s1+s2"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert base64.b64decode(headers["Authorization"].split()[1]) == b"a%20b:x%3Ay"


def _answer(body: bytes, status: int = 200, error: str | None = None) -> SendResult:
    return SendResult(status, 1.0, body, error)


def test_read_token() -> None:
    assert read_token(_answer(b'{"access_token":"t","expires_in":60}')) == ("t", 60.0)
    assert read_token(_answer(b'{"access_token":"t","token_type":"bearer"}')) == ("t", None)
    assert read_token(_answer(b'{"access_token":"t","expires_in":"30"}')) == ("t", 30.0)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (_answer(b"", error="timeout"), "auth_error: token endpoint: timeout"),
        (_answer(b"{}", status=401), "auth_error: token endpoint answered HTTP 401"),
        (_answer(b"<html>"), "auth_error: token endpoint answer is not JSON"),
        (_answer(b'{"token":"t"}'), "auth_error: token endpoint answer has no access_token"),
        (_answer(b'{"access_token":"t","token_type":"mac"}'), "auth_error: token type 'mac'"),
    ],
)
def test_read_token_failures(result: SendResult, message: str) -> None:
    with pytest.raises(TokenError) as caught:
        read_token(result)
    assert str(caught.value).startswith(message)


def test_refresh_at() -> None:
    assert refresh_at(100.0, 3600) == 100.0 + 3600 - 30
    assert refresh_at(100.0, 10) == 100.0 + 9  # a short life: a tenth early
    assert refresh_at(0.0, None) == DEFAULT_LIFETIME - 30


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("", True),
        ("http://127.0.0.1:3128", True),
        ("http://user:pw@proxy.internal:8080", True),
        ("https://proxy.internal:3128", False),
        ("http://proxy.internal", False),  # the port is required
        ("socks5://proxy.internal:1080", False),
        ("http://proxy.internal:99999", False),
    ],
)
def test_the_proxy_setting_is_checked_at_start(value: str, ok: bool) -> None:
    from pydantic import ValidationError

    from causeflow.settings import Settings

    if ok:
        assert Settings(webhook_proxy=value).webhook_proxy == value
    else:
        with pytest.raises(ValidationError, match="webhook"):
            Settings(webhook_proxy=value)


@pytest.mark.parametrize(
    "raw",
    ['"' + "9" * 400 + '"', '"' + "9" * 5000 + '"', "1e308", "18446744073709551615"],
    ids=["400-digit-string", "5000-digit-string", "1e308", "u64-max"],
)
def test_read_token_a_huge_lifetime_is_capped(raw: str) -> None:
    """A hostile endpoint's lifetime neither breaks the attempt (a number too large for a
    float, a string too long for an int) nor keeps a token for ever."""
    from causeflow.webhook.oauth import MAX_LIFETIME

    body = f'{{"access_token":"tok","token_type":"Bearer","expires_in":{raw}}}'.encode()
    assert read_token(SendResult(200, 1.0, body, None)) == ("tok", MAX_LIFETIME)
    assert refresh_at(0.0, MAX_LIFETIME) < 2 * 86_400

"""`CAUSEFLOW_FORWARDED_ALLOW_IPS`: a real `causeflow serve` believes `X-Forwarded-Proto` and
`X-Forwarded-For` from the proxies listed there, and from no other peer.

What the process believed is read from outside: the scheme from the dashboard cookies' `Secure`
flag, the client address from the budget a refused inbound request is counted against. The test
client connects from 127.0.0.1, so it is a trusted proxy exactly when the setting covers that
address.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from causeflow.settings import Settings
from tests.support.forwarded import cookie_flags, same_budget, sign_in
from tests.support.processes import Deployment, service_env

pytestmark = pytest.mark.process

HTTPS = {"X-Forwarded-Proto": "https"}
TRUSTED = {None: True, "10.0.0.0/8,127.0.0.0/8": True, "*": True}
IGNORED = {"": False, "192.0.2.10,::1": False}
# A running service: its client, its tenant, and whether it believes the test client's headers.
Served = tuple[httpx.Client, dict[str, str], bool]


@contextmanager
def serving(tmp_path: Path, allow: str | None) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """One `causeflow serve` (SQLite) with `allow` as the setting (None: unset), a tenant, and
    a client on it."""
    env = {"CAUSEFLOW_INGEST_REFUSED_RATE_LIMIT_PER_MINUTE": "1000"}
    if allow is not None:
        env["CAUSEFLOW_FORWARDED_ALLOW_IPS"] = allow
    with Deployment(tmp_path, env=env) as dep:
        tenant = dep.create_tenant("acme")
        server = dep.add_server()
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            yield client, tenant


@pytest.fixture(
    scope="module",
    params=[*TRUSTED, *IGNORED],
    ids=lambda v: "unset" if v is None else repr(v),
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    allow = request.param
    with serving(tmp_path_factory.mktemp("forwarded"), allow) as (client, tenant):
        yield client, tenant, {**TRUSTED, **IGNORED}[allow]


def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(
    served: tuple[httpx.Client, dict[str, str], bool],
) -> None:
    client, tenant, trusted = served
    login, session = sign_in(client, tenant["apiKey"], HTTPS)
    assert ("secure" in cookie_flags(login)) is trusted
    assert ("secure" in cookie_flags(session)) is trusted
    assert {"httponly", "samesite=strict"} <= cookie_flags(session)
    # Without the header the request is what it was on the wire: plain http.
    login, session = sign_in(client, tenant["apiKey"])
    assert "secure" not in cookie_flags(login) | cookie_flags(session)
    # A proxy saying http is believed too (no upgrade from anything but https).
    _, session = sign_in(client, tenant["apiKey"], {"X-Forwarded-Proto": "http"})
    assert "secure" not in cookie_flags(session)


def test_the_client_address_comes_from_a_trusted_proxy_only(
    served: tuple[httpx.Client, dict[str, str], bool],
) -> None:
    client, tenant, trusted = served
    one, two = {"X-Forwarded-For": "203.0.113.1"}, {"X-Forwarded-For": "203.0.113.2"}
    # Two forwarded addresses: two budgets when believed, the peer's one budget otherwise.
    assert same_budget(client, tenant["tenantId"], one, two) is not trusted
    # One forwarded address is one budget either way.
    three = {"X-Forwarded-For": "203.0.113.3"}
    assert same_budget(client, tenant["tenantId"], three, three)
    # A forwarded address is not the peer's own: the service counted it apart when believed.
    four = {"X-Forwarded-For": "203.0.113.4"}
    assert same_budget(client, tenant["tenantId"], four, {}) is not trusted


def test_an_appended_chain_yields_the_address_the_trusted_proxy_saw(tmp_path: Path) -> None:
    """A proxy that appends (`$proxy_add_x_forwarded_for`) after a client's own claim: the
    address is the right-most one that is not a trusted proxy, never the client's claim."""
    with serving(tmp_path, "127.0.0.1,::1") as (client, tenant):
        claimed = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
        seen = {"X-Forwarded-For": "203.0.113.9"}
        assert same_budget(client, tenant["tenantId"], claimed, seen)
        behind = {"X-Forwarded-For": "203.0.113.10, 127.0.0.1"}
        assert same_budget(client, tenant["tenantId"], behind, {"X-Forwarded-For": "203.0.113.10"})


@pytest.mark.parametrize("value", ["localhost", "10.0.0.1/8", "*,127.0.0.1", "127.0.0.1;::1"])
def test_a_malformed_list_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="CAUSEFLOW_FORWARDED_ALLOW_IPS"):
        Settings(forwarded_allow_ips=value)


@pytest.mark.parametrize(
    ("value", "proxies"),
    [("", []), (" 10.0.0.1 , fd00::/8 ", ["10.0.0.1", "fd00::/8"]), ("*", ["*"])],
)
def test_a_list_is_read_as_uvicorn_takes_it(value: str, proxies: list[str]) -> None:
    assert Settings(forwarded_allow_ips=value).trusted_proxies == proxies


def test_serve_stops_on_a_malformed_list_with_one_line(tmp_path: Path) -> None:
    env = service_env(
        {"CAUSEFLOW_DATA_DIR": str(tmp_path), "CAUSEFLOW_FORWARDED_ALLOW_IPS": "proxy.internal"}
    )
    result = subprocess.run(
        [sys.executable, "-m", "causeflow", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "CAUSEFLOW_FORWARDED_ALLOW_IPS" in result.stderr and "proxy.internal" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "causeflow.db").exists()

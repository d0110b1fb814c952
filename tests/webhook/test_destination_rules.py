"""The pure parts of broker destinations: URL checks and masking, options, the registry's
names, the classification of failures, and the SSRF vetting of broker hosts."""

from __future__ import annotations

import ipaddress
import socket

import pytest
import yarl

from causeflow.errors import ValidationFailed
from causeflow.webhook.destinations import checks, registry
from causeflow.webhook.destinations.base import BrokerError
from causeflow.webhook.destinations.options import SPECS, port_of
from causeflow.webhook.destinations.pool import PublisherPool, classify, vetted_address
from causeflow.webhook.sender import SendResult
from causeflow.webhook.ssrf import SsrfBlocked

pytestmark = pytest.mark.unit

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def paths(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [e["path"] for e in exc.value.details["errors"]]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://u:pw@h.example.com:6380/1", "redis://u:****@h.example.com:6380/1"),
        ("redis://:pw@h.example.com", "redis://:****@h.example.com"),
        ("nats://token@h.example.com", "nats://****@h.example.com"),
        ("amqp://h.example.com/vh", "amqp://h.example.com/vh"),
    ],
)
def test_credentials_are_masked(url: str, shown: str) -> None:
    assert str(checks.mask(yarl.URL(url))) == shown
    kind = {"redis": "redis", "nats": "nats", "amqp": "rabbitmq"}[yarl.URL(url).scheme]
    options = {
        "redis": {"stream": "s"},
        "nats": {"subject": "s"},
        "rabbitmq": {"exchange": "", "routingKey": "k"},
    }[kind]
    checked = checks.check_broker(kind, url, options, allow=())
    assert checked.shown_url == shown
    assert checked.sealed_url == (url if shown != url else None)


def test_a_masked_url_keeps_stored_credentials_at_the_same_place_only() -> None:
    stored = yarl.URL("redis://u:pw@h.example.com:6379/0")
    kept = checks.keep_credentials(yarl.URL("redis://u:****@h.example.com:6379/3"), stored)
    assert str(kept) == "redis://u:pw@h.example.com:6379/3"
    token = yarl.URL("nats://tok@h.example.com")
    assert str(checks.keep_credentials(yarl.URL("nats://****@h.example.com"), token)) == str(token)
    for moved in ("redis://u:****@other.example.com:6379/0", "rediss://u:****@h.example.com/0"):
        with pytest.raises(ValidationFailed) as exc:
            checks.keep_credentials(yarl.URL(moved), stored)
        assert paths(exc) == ["url"]
    with pytest.raises(ValidationFailed):
        checks.keep_credentials(yarl.URL("redis://u:****@h.example.com"), None)
    # new credentials replace the stored ones
    fresh = yarl.URL("redis://v:new@h.example.com:6379/0")
    assert checks.keep_credentials(fresh, stored) == fresh


@pytest.mark.parametrize(
    ("type_", "url"),
    [
        ("redis", "https://h.example.com"),
        ("redis", "redis://192.168.1.1"),
        ("redis", "redis://[fe80::1]"),
        ("redis", "redis://0x7f.1"),
        ("redis", "redis://localhost"),
        ("redis", "redis://h.example.com:99999"),
        ("redis", "redis:// h.example.com"),
        ("nats", "redis://h.example.com"),
        ("mqtt", "mqtt://"),
        ("redis", "redis://[|hv]@"),  # yarl fails with IndexError here
    ],
)
def test_refused_urls(type_: str, url: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        checks.parse_broker_url(type_, url, ())
    assert paths(exc) == ["url"]


def test_the_allow_list_admits_loopback_brokers() -> None:
    assert checks.parse_broker_url("redis", "redis://127.0.0.1:6379", LOOPBACK).port == 6379
    assert checks.parse_broker_url("redis", "redis://localhost", LOOPBACK).host == "localhost"


def test_options_per_type() -> None:
    assert checks.check_options("webhook", None) is None
    assert checks.check_options("mqtt", {"topic": "a/b"}) == {"topic": "a/b", "qos": 1}
    with pytest.raises(ValidationFailed) as exc:
        checks.check_options("nats", {"subject": "a >", "stream": "x.y"})
    assert paths(exc) == ["options.subject", "options.stream"]


def test_default_ports() -> None:
    assert port_of(SPECS["redis"], "rediss", None) == 6379
    assert port_of(SPECS["rabbitmq"], "amqps", None) == 5671
    assert port_of(SPECS["mqtt"], "mqtts", None) == 8883
    assert port_of(SPECS["nats"], "tls", 4443) == 4443


def test_the_registry_knows_every_type_and_loads_lazily() -> None:
    assert registry.TYPES == ("webhook", "redis", "nats", "rabbitmq", "mqtt")
    assert registry.has_module("redis") and registry.has_module("nats")
    assert not registry.has_module("kafka") and not registry.has_module("webhook")
    module = registry.load("redis")
    assert module.SCHEMES == frozenset({"redis", "rediss"}) and module.DEFAULT_PORT == 6379
    assert module.Options is SPECS["redis"].options
    with pytest.raises(registry.Unsupported):
        registry.load("kafka")


def test_a_broker_success_is_a_success() -> None:
    assert SendResult(None, 1.0, b"", None).ok
    assert not SendResult(None, 1.0, b"", "broker_refused: no").ok
    assert SendResult(204, 1.0, b"", None).ok and not SendResult(500, 1.0, b"", None).ok


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (BrokerError("full", refused=True), "broker_refused: full"),
        (BrokerError("down"), "broker_unavailable: down"),
        (SsrfBlocked("x"), "ssrf_blocked"),
        (TimeoutError(), "timeout"),
        (
            socket.gaierror(-2, "Name or service not known"),
            "dns_error: [Errno -2] Name or service not known",
        ),
        (registry.Unsupported("absent"), "broker_unsupported: absent"),
        (ConnectionRefusedError(111, "refused"), "connect_error: [Errno 111] refused"),
        (RuntimeError("bug"), "broker_error: bug"),
    ],
)
def test_failures_are_classified(exc: BaseException, error: str) -> None:
    assert classify(exc) == error


async def test_names_are_vetted_at_connection_time() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return {
            "pub.example.com": ["93.184.216.34"],
            "rebind.example.com": ["93.184.216.34", "127.0.0.1"],
        }[host]

    url = yarl.URL("redis://pub.example.com")
    assert await vetted_address(url, 6379, (), resolve) == "93.184.216.34"
    with pytest.raises(SsrfBlocked):
        await vetted_address(yarl.URL("redis://rebind.example.com"), 6379, (), resolve)
    assert await vetted_address(yarl.URL("redis://rebind.example.com"), 6379, LOOPBACK, resolve)
    with pytest.raises(SsrfBlocked):
        await vetted_address(yarl.URL("redis://127.0.0.1"), 6379, (), resolve)


async def test_a_blocked_host_is_an_ssrf_blocked_attempt_without_connecting() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    pool = PublisherPool(resolve=resolve, timeout=1)
    result = await pool.send(
        "sub_1", "redis", "redis://internal.example.com", {"stream": "s"}, b"{}", {}
    )
    assert result == SendResult(None, result.latency_ms, b"", "ssrf_blocked")
    assert len(pool) == 0
    await pool.close()


def test_rediss_connects_to_the_vetted_address_and_checks_the_name() -> None:
    from causeflow.webhook.destinations.base import Target
    from causeflow.webhook.destinations.redis import NamedSSLConnection, client_for

    target = Target(yarl.URL("rediss://u:pw@cache.example.com/3"), "93.184.216.34", {"stream": "s"})
    client = client_for(target, 2.0)
    pool = client.connection_pool
    assert pool.connection_class is NamedSSLConnection
    connection = pool.make_connection()
    arguments = connection._connection_arguments()
    assert arguments["host"] == "93.184.216.34" and arguments["port"] == 6379
    assert arguments["server_hostname"] == "cache.example.com"
    assert arguments["ssl"].check_hostname is True
    assert connection.db == 3 and connection.password == "pw"
    plain = client_for(Target(yarl.URL("redis://h.example.com:7000"), "93.184.216.34", {}), 2.0)
    assert plain.connection_pool.connection_class.__name__ == "Connection"


def test_nats_connects_to_the_vetted_address_with_the_urls_credentials() -> None:
    from causeflow.webhook.destinations.base import Target
    from causeflow.webhook.destinations.nats import _connect_args

    tls = _connect_args(Target(yarl.URL("tls://u:pw@nats.example.com"), "2606:2800::1", {}), 2.0)
    assert tls["servers"] == ["nats://[2606:2800::1]:4222"]
    assert tls["tls_hostname"] == "nats.example.com" and tls["tls"].check_hostname
    assert (tls["user"], tls["password"]) == ("u", "pw")
    assert tls["allow_reconnect"] is False and tls["max_reconnect_attempts"] == 1
    token = _connect_args(
        Target(yarl.URL("nats://t0k@h.example.com:4223"), "93.184.216.34", {}), 2.0
    )
    assert token["servers"] == ["nats://93.184.216.34:4223"] and token["token"] == "t0k"
    assert "tls" not in token and "user" not in token

"""SSRF vetting from tables: every spelling of a refused address, public ones, allow-lists."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from causeflow.webhook.ssrf import (
    SsrfBlocked,
    VettingResolver,
    check_url,
    is_forbidden,
    parse_allow_cidrs,
    parse_host_literal,
)

pytestmark = pytest.mark.unit

FORBIDDEN_HOSTS = [
    # loopback, every spelling
    "127.0.0.1",
    "127.255.255.254",
    "2130706433",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "0X7F.0.0.1",
    "0x7f000001",
    "017700000001",
    "127.1",
    "127.0.1",
    "0177.1",
    "0x7f.1",
    "127.0.0.1.",
    # unspecified and "this network"
    "0.0.0.0",
    "0",
    "0x0",
    "0.1.2.3",
    # RFC 1918
    "10.0.0.1",
    "012.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "3232235777",  # 192.168.1.1 as a number
    # link-local and cloud metadata
    "169.254.169.254",
    "0xa9fea9fe",
    "169.254.0.1",
    # CGNAT
    "100.64.0.1",
    "100.127.255.255",
    # multicast, reserved, broadcast
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    # benchmarking, documentation, protocol assignments
    "198.18.0.1",
    "198.19.255.255",
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.9",
    "192.0.0.1",
    # IPv6 loopback, unspecified, mapped and compatible forms
    "[::1]",
    "[::]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::ffff:10.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[::127.0.0.1]",
    "[::8.8.8.8]",  # deprecated v4-compatible: refused whatever it carries
    # ULA, link-local, site-local, multicast
    "[fc00::1]",
    "[fd12:3456:789a::1]",
    "[fe80::1]",
    "[febf::1]",
    "[fec0::1]",
    "[ff02::1]",
    "[ff05::1:3]",
    # 6to4 and NAT64 carrying refused v4
    "[2002:a00:1::1]",  # 6to4 of 10.0.0.1
    "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    "[2002:a9fe:a9fe::1]",  # 6to4 of 169.254.169.254
    "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
    "[64:ff9b::127.0.0.1]",
    "[64:ff9b::a9fe:a9fe]",
    "[64:ff9b:1::a00:1]",  # local-use NAT64 prefix
    # Teredo, discard, documentation, benchmarking
    "[2001::1]",
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
    "[100::1]",
    "[2001:db8::1]",
    "[2001:2::1]",
    "[3fff::1]",
    # outside 2000::/3
    "[4000::1]",
    "[::ffff:0:7f00:1]",  # IPv4-translated form
]

PUBLIC_HOSTS = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "134744072",  # 8.8.8.8 as a number: odd but public
    "100.63.255.255",  # just below CGNAT
    "100.128.0.1",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.1",
    "11.0.0.1",
    "169.255.0.1",
    "198.17.255.255",
    "198.20.0.1",
    "[2606:4700:4700::1111]",
    "[2a00:1450:4001:80b::200e]",
    "[::ffff:8.8.8.8]",
    "[2002:808:808::1]",  # 6to4 of a public address
    "[64:ff9b::808:808]",  # NAT64 of a public address
]


def literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    parsed = parse_host_literal(host)
    assert parsed is not None, host
    return parsed


def test_enough_forbidden_forms() -> None:
    assert len(FORBIDDEN_HOSTS) >= 30


@pytest.mark.parametrize("host", FORBIDDEN_HOSTS)
def test_forbidden(host: str) -> None:
    assert is_forbidden(literal(host))


@pytest.mark.parametrize("host", FORBIDDEN_HOSTS)
def test_forbidden_literal_url_is_refused(host: str) -> None:
    with pytest.raises(SsrfBlocked) as caught:
        check_url(f"https://{host}:8443/hook", allow_http=False, allow=())
    assert caught.value.reason


@pytest.mark.parametrize("host", PUBLIC_HOSTS)
def test_public(host: str) -> None:
    assert not is_forbidden(literal(host))
    check_url(f"https://{host}/hook", allow_http=False, allow=())


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.258", "10.1.1.2"),  # last part fills the remaining two bytes
        ("0x", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("8.8.8.8.", "8.8.8.8"),
    ],
)
def test_parse_host_literal(host: str, expected: str) -> None:
    assert literal(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "host", ["hooks.example.com", "localhost", "a.b.c", "1.example", "xn--bcher-kva.example"]
)
def test_names_are_not_literals(host: str) -> None:
    assert parse_host_literal(host) is None


@pytest.mark.parametrize(
    "host",
    [
        "256.0.0.1",
        "1.2.3.4.5",
        "08.0.0.1",
        "1.2.3.256",
        "1.2.65536",
        "4294967296",
        "1..1",
        "[fe80::1%eth0]",
        "fe80::1%25eth0",
        "[zz::1]",
        "[127.0.0.1]",
        "[::1",
        "example.123",
    ],
)
def test_parse_host_literal_refuses(host: str) -> None:
    with pytest.raises(ValueError):
        parse_host_literal(host)


def test_allow_list() -> None:
    loopback8 = parse_allow_cidrs("127.0.0.0/8, ::1/128")
    assert not is_forbidden(literal("127.0.0.1"), loopback8)
    assert not is_forbidden(literal("127.1"), loopback8)
    assert not is_forbidden(literal("[::1]"), loopback8)
    assert is_forbidden(literal("10.0.0.1"), loopback8)
    assert is_forbidden(literal("169.254.169.254"), loopback8)
    # Embedded v4 forms are judged against the allow-list too.
    assert not is_forbidden(literal("[::ffff:127.0.0.1]"), loopback8)
    assert not is_forbidden(literal("[64:ff9b::7f00:1]"), loopback8)
    assert is_forbidden(literal("[::ffff:10.0.0.1]"), loopback8)

    only_one = parse_allow_cidrs("127.0.0.1/32")
    assert not is_forbidden(literal("127.0.0.1"), only_one)
    assert is_forbidden(literal("127.0.0.2"), only_one)
    assert is_forbidden(literal("[::1]"), only_one)

    v6_only = parse_allow_cidrs("::1/128")
    assert not is_forbidden(literal("[::1]"), v6_only)
    assert is_forbidden(literal("127.0.0.1"), v6_only)


def test_scoped_ipv6_is_refused() -> None:
    assert is_forbidden(ipaddress.IPv6Address("fe80::1%eth0"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("127.0.0.0/8,::1/128", ("127.0.0.0/8", "::1/128")),
        (" 10.0.0.0/8 192.168.0.0/16 ", ("10.0.0.0/8", "192.168.0.0/16")),
        ("127.0.0.1", ("127.0.0.1/32",)),
        ("127.0.0.1/8", ("127.0.0.0/8",)),
    ],
)
def test_parse_allow_cidrs(text: str, expected: tuple[str, ...]) -> None:
    assert parse_allow_cidrs(text) == tuple(ipaddress.ip_network(n) for n in expected)


def test_parse_allow_cidrs_names_the_bad_entry() -> None:
    with pytest.raises(ValueError, match="nonsense"):
        parse_allow_cidrs("127.0.0.0/8,nonsense")


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/causeflow",
        "https://hooks.example.com:8443/x?y=1",
        "https://bücher.example/",
        "https://8.8.8.8/",
        "https://[2606:4700:4700::1111]:8443/",
    ],
)
def test_check_url_accepts(url: str) -> None:
    check_url(url, allow_http=False, allow=())


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/",
        "ftp://hooks.example.com/",
        "hooks.example.com/path",
        "https://user:pw@hooks.example.com/",
        "https://user@hooks.example.com/",
        "https://:pw@hooks.example.com/",
        "https:///nohost",
        "https://hooks.example.com:99999/",
        "https://hooks.example.com:0/",
        "https://hooks example.com/",
        "https://hooks.example.com/\r\nX: 1",
        "https://[fe80::1%25eth0]/",
        "https://1.2.3.4.5/",
        "https://exa%2emple.com/",
        "https://[zz::1]/",
    ],
)
def test_check_url_refuses_malformed(url: str) -> None:
    with pytest.raises(ValueError):
        check_url(url, allow_http=False, allow=())


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/",
        "https://api.localhost:8443/",
        "https://127.0.0.1/",
        "https://１２７.0.0.1/",  # full-width digits normalise to 127.0.0.1
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:127.0.0.1]/",
    ],
)
def test_check_url_refuses_refused_addresses(url: str) -> None:
    with pytest.raises(SsrfBlocked):
        check_url(url, allow_http=False, allow=())


def test_check_url_http_and_allow_list() -> None:
    check_url("http://hooks.example.com/", allow_http=True, allow=())
    allow = parse_allow_cidrs("127.0.0.0/8,::1/128")
    check_url("http://127.0.0.1:8080/hook", allow_http=True, allow=allow)
    check_url("https://localhost:8443/hook", allow_http=False, allow=allow)
    with pytest.raises(SsrfBlocked):
        check_url("http://10.0.0.1:8080/hook", allow_http=True, allow=allow)
    with pytest.raises(ValueError):
        check_url("http://127.0.0.1:8080/hook", allow_http=False, allow=allow)


class Answers:
    """An injected DNS: answers a fixed list and records the names asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        return self.addresses


async def test_resolver_returns_vetted_addresses_with_the_hostname() -> None:
    answers = Answers("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    resolver = VettingResolver(answers)
    results = await resolver.resolve("hooks.example.com", 443, socket.AF_UNSPEC)
    assert [r["host"] for r in results] == answers.addresses
    assert {r["hostname"] for r in results} == {"hooks.example.com"}
    assert [r["family"] for r in results] == [socket.AF_INET, socket.AF_INET6]
    assert all(r["port"] == 443 for r in results)
    v4_only = await resolver.resolve("hooks.example.com", 443, socket.AF_INET)
    assert [r["host"] for r in v4_only] == ["93.184.216.34"]
    # No caching of its own: every call asks again.
    assert answers.asked == ["hooks.example.com", "hooks.example.com"]


@pytest.mark.parametrize(
    "addresses",
    [
        ("127.0.0.1",),
        ("93.184.216.34", "10.0.0.1"),  # one bad answer spoils the lot
        ("::ffff:169.254.169.254",),
        ("fe80::1%eth0",),
        ("not-an-ip",),
    ],
)
async def test_resolver_refuses_any_bad_answer(addresses: tuple[str, ...]) -> None:
    resolver = VettingResolver(Answers(*addresses))
    with pytest.raises(SsrfBlocked):
        await resolver.resolve("hooks.example.com", 443, socket.AF_UNSPEC)


async def test_resolver_vets_literals_without_asking_dns() -> None:
    answers = Answers("93.184.216.34")
    resolver = VettingResolver(answers, allow=parse_allow_cidrs("127.0.0.1/32"))
    with pytest.raises(SsrfBlocked):
        await resolver.resolve("0x7f.0.0.2", 443, socket.AF_UNSPEC)
    ok = await resolver.resolve("2130706433", 443, socket.AF_UNSPEC)
    assert [r["host"] for r in ok] == ["127.0.0.1"]
    assert answers.asked == []


async def test_resolver_with_no_answer_is_a_dns_failure() -> None:
    with pytest.raises(OSError):
        await VettingResolver(Answers()).resolve("hooks.example.com", 443, socket.AF_UNSPEC)

"""The SSRF rules stated as rules: ranges, spellings, parser limits, messages, the resolver.

tests/webhook/test_ssrf.py lists known-bad and known-good hosts; this file states what must hold
for every address of every refused range, in every spelling the host parser accepts, and pins
the parser's limits and the reason each refusal gives (a 422 shows it to the client).
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given, settings
from hypothesis import strategies as st

from causeflow.webhook.ssrf import (
    SsrfBlocked,
    VettingResolver,
    check_url,
    is_forbidden,
    parse_allow_cidrs,
    parse_host_literal,
    vet_url,
)

pytestmark = pytest.mark.unit

# Equivalent mutants (no input can tell them from the original):
# equivalent: causeflow.webhook.ssrf.x__embedded_v4__mutmut_7, 8, 24, 25, 30, 31 -- the form's
#   name is only ever compared with "compatible"; renaming "mapped", "6to4" or "nat64" changes
#   nothing.
# equivalent: causeflow.webhook.ssrf.x__parse_v4_number__mutmut_2, 3, 4, 5, 39, 40, 41, 42 --
#   parse_host_literal replaces every ValueError of a part with its own message.
# equivalent: causeflow.webhook.ssrf.x__parse_v4_number__mutmut_36 -- int(label) is base 10.
# equivalent: causeflow.webhook.ssrf.x_parse_allow_cidrs__mutmut_12 -- strict=None is falsy.
# equivalent: causeflow.webhook.ssrf.x_vet_url__mutmut_49, 50 -- yarl refuses a port above
#   65535 before the range check sees it (`:65536` is "malformed").
# equivalent: causeflow.webhook.ssrf.x_vet_url__mutmut_69 -- rstrip("XX.XX") strips "X" too,
#   but a host name that passed the lower-case name pattern holds no "X".

# Every refused IPv4 range (IANA special-purpose registry) with its first and last address and
# the public neighbours just outside it (None where the neighbour is itself refused).
V4_RANGES = [
    ("0.0.0.0/8", None, "1.0.0.0"),
    ("10.0.0.0/8", "9.255.255.255", "11.0.0.0"),
    ("100.64.0.0/10", "100.63.255.255", "100.128.0.0"),
    ("127.0.0.0/8", "126.255.255.255", "128.0.0.0"),
    ("169.254.0.0/16", "169.253.255.255", "169.255.0.0"),
    ("172.16.0.0/12", "172.15.255.255", "172.32.0.0"),
    ("192.0.0.0/24", "191.255.255.255", "192.0.1.0"),
    ("192.0.2.0/24", "192.0.1.255", "192.0.3.0"),
    ("192.88.99.0/24", "192.88.98.255", "192.88.100.0"),
    ("192.168.0.0/16", "192.167.255.255", "192.169.0.0"),
    ("198.18.0.0/15", "198.17.255.255", "198.20.0.0"),
    ("198.51.100.0/24", "198.51.99.255", "198.51.101.0"),
    ("203.0.113.0/24", "203.0.112.255", "203.0.114.0"),
    ("224.0.0.0/4", "223.255.255.255", None),
    ("240.0.0.0/4", None, None),
]
V6_RANGES = [
    ("2001::/23", "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:200::"),
    ("2001:db8::/32", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::"),
    ("3fff::/20", "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff:1000::"),
]
V4_NETWORKS = [ipaddress.IPv4Network(cidr) for cidr, *_ in V4_RANGES]


@pytest.fixture
def stdlib_calls_everything_global(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python whose `is_global` tables forgot every special range: the list must not care."""
    monkeypatch.setattr(ipaddress.IPv4Address, "is_global", property(lambda self: True))


@pytest.mark.usefixtures("stdlib_calls_everything_global")
@pytest.mark.parametrize(("cidr", "below", "above"), V4_RANGES, ids=[r[0] for r in V4_RANGES])
def test_every_v4_range_is_refused_from_its_first_to_its_last_address(
    cidr: str, below: str | None, above: str | None
) -> None:
    net = ipaddress.IPv4Network(cidr)
    for ip in (net[0], net[1], net[net.num_addresses // 2], net[-1]):
        assert is_forbidden(ip), ip
        with pytest.raises(SsrfBlocked, match=rf"^{ip} is not a public address$"):
            vet_url(f"https://{ip}/", allow_http=False, allow=())
    for outside in (below, above):
        if outside is not None:
            assert not is_forbidden(ipaddress.IPv4Address(outside)), outside


@pytest.mark.parametrize(("cidr", "below", "above"), V6_RANGES, ids=[r[0] for r in V6_RANGES])
def test_every_v6_range_is_refused_and_its_neighbours_are_not(
    cidr: str, below: str, above: str
) -> None:
    net = ipaddress.IPv6Network(cidr)
    for ip in (net[0], net[1], net[-1]):
        assert is_forbidden(ip), ip
    assert not is_forbidden(ipaddress.IPv6Address(below))
    assert not is_forbidden(ipaddress.IPv6Address(above))


def test_ipv6_outside_2000_slash_3_is_refused() -> None:
    for text in ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "4000::", "::2:1"):
        assert is_forbidden(ipaddress.IPv6Address(text)), text
    assert not is_forbidden(ipaddress.IPv6Address("2000::1"))


def _part(value: int, style: str) -> str:
    if style == "oct":
        return "0" + format(value, "o")
    if style == "hex":
        return "0x" + format(value, "x")
    if style == "HEX":
        return "0X" + format(value, "X")
    return str(value)


@st.composite
def v4_spellings(draw: st.DrawFn, value: int) -> str:
    """One spelling of the address `value` that inet_aton (and browsers) accept."""
    parts = draw(st.integers(1, 4))
    octets = value.to_bytes(4, "big")
    head = list(octets[: parts - 1])
    tail = int.from_bytes(octets[parts - 1 :], "big")
    styles = st.sampled_from(["dec", "oct", "hex", "HEX"])
    text = ".".join(_part(p, draw(styles)) for p in [*head, tail])
    return text + draw(st.sampled_from(["", "."]))


@st.composite
def forbidden_v4(draw: st.DrawFn) -> ipaddress.IPv4Address:
    net = draw(st.sampled_from(V4_NETWORKS))
    return net[draw(st.integers(0, net.num_addresses - 1))]


def v6_forms(ip: ipaddress.IPv4Address) -> list[str]:
    """The IPv6 spellings that carry `ip`: mapped, 6to4 and NAT64."""
    word = int(ip)
    return [
        f"[::ffff:{ip}]",
        f"[::ffff:{word >> 16:x}:{word & 0xFFFF:x}]",
        f"[2002:{word >> 16:x}:{word & 0xFFFF:x}::1]",
        f"[64:ff9b::{ip}]",
    ]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_every_forbidden_address_is_refused_in_every_spelling(data: st.DataObject) -> None:
    ip = data.draw(forbidden_v4())
    spelling = data.draw(v4_spellings(int(ip)))
    assert parse_host_literal(spelling) == ip, spelling
    for host in [spelling, *v6_forms(ip)]:
        with pytest.raises(SsrfBlocked):
            check_url(f"https://{host}/", allow_http=False, allow=())


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.data())
def test_every_spelling_of_a_public_address_means_that_address(data: st.DataObject) -> None:
    ip = ipaddress.IPv4Address(data.draw(st.sampled_from(["8.8.8.8", "1.1.1.1", "9.9.9.9"])))
    spelling = data.draw(v4_spellings(int(ip)))
    assert parse_host_literal(spelling) == ip, spelling
    check_url(f"https://{spelling}/", allow_http=False, allow=())


# Where the parser stops: each part but the last is one byte, the last fills what is left, and
# at most four parts. A number out of range is refused, never wrapped or reread as a name.
@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("10.255.0.1", "10.255.0.1"),
        ("4294967295", "255.255.255.255"),
        ("1.16777215", "1.255.255.255"),
        ("1.2.65535", "1.2.255.255"),
        ("1.2.3.255", "1.2.3.255"),
        ("0xff.0377.255.0xFF", "255.255.255.255"),
        ("0x.0.0.0x", "0.0.0.0"),
    ],
)
def test_the_parser_reads_each_part_up_to_its_limit(host: str, address: str) -> None:
    assert parse_host_literal(host) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize(
    "host",
    [
        "10.256.0.1",
        "0x100.0.0.1",
        "0400.0.0.1",
        "4294967296",
        "1.16777216",
        "1.2.65536",
        "1.2.3.256",
        "1.2.3.4.0",
        "1.2.3.4.5.6",
        "1..2.3",
        "09.1.1.1",
    ],
)
def test_numbers_past_a_parts_limit_are_refused_not_reinterpreted(host: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_host_literal(host)
    assert str(info.value) == f"{host!r} ends in a number but is no IPv4 address"
    with pytest.raises(ValueError):
        check_url(f"https://{host}/", allow_http=False, allow=())


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("[::1", "unbalanced brackets in host '[::1'"),
        ("::1]", "unbalanced brackets in host '::1]'"),
        ("[127.0.0.1]", "only IPv6 addresses go in brackets: '[127.0.0.1]'"),
        (
            "[fe80::1%eth0]",
            "zone ids and percent signs are not allowed in a host: '[fe80::1%eth0]'",
        ),
        ("[zz::1]", "'[zz::1]' is not a valid IPv6 address"),
    ],
)
def test_malformed_literals_say_what_is_wrong(host: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_host_literal(host)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("url", "allow_http", "message"),
    [
        (
            "https://a.example/ x",
            False,
            "the URL contains whitespace, control characters or backslashes",
        ),
        (
            "https://a.example\\b/",
            False,
            "the URL contains whitespace, control characters or backslashes",
        ),
        ("ftp://a.example/", False, "the URL must use https"),
        ("ftp://a.example/", True, "the URL must use https or http"),
        ("http://a.example/", False, "the URL must use https"),
        ("https://u:p@a.example/", False, "the URL must not carry a user name or password"),
        ("https:///path", False, "the URL has no host"),
        ("https://a.example:0/", False, "the URL has an invalid port"),
        ("https://a_b.example/", False, None),
        ("https://[::1/", False, "the URL is malformed: Invalid IPv6 URL"),
        ("https://a*b.example/", False, "the URL host 'a*b.example' is not a valid name"),
    ],
)
def test_each_refusal_of_a_url_says_why(url: str, allow_http: bool, message: str | None) -> None:
    if message is None:
        vet_url(url, allow_http=allow_http, allow=())
        return
    with pytest.raises(ValueError) as info:
        vet_url(url, allow_http=allow_http, allow=())
    assert str(info.value) == message


@pytest.mark.parametrize("port", [1, 443, 65535])
def test_every_port_from_1_to_65535_is_accepted(port: int) -> None:
    assert vet_url(f"https://hooks.example:{port}/", allow_http=False, allow=()).port == port


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost./",
        "https://api.localhost./",
        "https://LOCALHOST/",
        "https://a.localhost/",
    ],
)
def test_loopback_names_are_refused_with_or_without_the_root_dot(url: str) -> None:
    with pytest.raises(SsrfBlocked) as info:
        vet_url(url, allow_http=False, allow=())
    host = url.removeprefix("https://").rstrip("/").lower()
    assert info.value.reason == f"{host} is a loopback name"
    assert str(info.value) == info.value.reason


# A loopback name is refused at create time while both loopbacks are; once the allow-list opens
# either, the name passes and the resolver vets whatever it resolves to on each delivery.
@pytest.mark.parametrize(
    ("allow", "refused"),
    [
        ("127.0.0.0/8,::1/128", False),
        ("127.0.0.0/8", False),
        ("::1/128", False),
        ("10.0.0.0/8", True),
        ("", True),
    ],
)
def test_a_loopback_name_passes_once_a_loopback_is_allowed(allow: str, refused: bool) -> None:
    networks = parse_allow_cidrs(allow)
    if refused:
        with pytest.raises(SsrfBlocked):
            vet_url("https://localhost/", allow_http=False, allow=networks)
    else:
        vet_url("https://localhost/", allow_http=False, allow=networks)


def test_names_that_only_contain_localhost_are_names() -> None:
    for url in ("https://localhost.example/", "https://mylocalhost/", "https://localhostx/"):
        vet_url(url, allow_http=False, allow=())


def test_an_allow_list_skips_empty_items_anywhere() -> None:
    assert parse_allow_cidrs(",, 10.0.0.0/8 ,,::1 ") == (
        ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv6Network("::1/128"),
    )
    assert parse_allow_cidrs("10.1.2.3/8") == (ipaddress.IPv4Network("10.0.0.0/8"),)


def test_embedded_v4_is_judged_against_the_allow_list() -> None:
    allow = parse_allow_cidrs("10.0.0.0/8")
    for host in ("::ffff:10.0.0.1", "::10.0.0.1", "2002:a00:1::1", "64:ff9b::10.0.0.1"):
        assert not is_forbidden(ipaddress.IPv6Address(host), allow), host
    assert is_forbidden(ipaddress.IPv6Address("::ffff:10.0.0.1"))
    assert is_forbidden(ipaddress.IPv6Address("::10.0.0.1"))


def test_loopback_and_unspecified_v6_are_no_compatible_forms() -> None:
    # "This network" allowed does not open ::1 or ::, which are IPv6's own loopback and
    # unspecified address; ::2 is the compatible form of 0.0.0.2 and follows the allow-list.
    allow = parse_allow_cidrs("0.0.0.0/8")
    assert is_forbidden(ipaddress.IPv6Address("::1"), allow)
    assert is_forbidden(ipaddress.IPv6Address("::"), allow)
    assert not is_forbidden(ipaddress.IPv6Address("::2"), allow)
    assert is_forbidden(ipaddress.IPv6Address("::2"))


def test_the_v4_compatible_form_is_refused_whatever_it_carries() -> None:
    for carried in ("8.8.8.8", "1.1.1.1", "93.184.216.34"):
        assert is_forbidden(ipaddress.IPv6Address(f"::{carried}")), carried


class FixedDns(AbstractResolver):
    """An aiohttp resolver with fixed answers that records what it was asked and closed."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[tuple[str, int, socket.AddressFamily]] = []
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append((host, port, family))
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


async def test_an_aiohttp_resolver_inside_is_asked_with_host_port_and_family() -> None:
    inner = FixedDns("93.184.216.34")
    resolver = VettingResolver(inner)
    results = await resolver.resolve("hooks.example.com", 8443, socket.AF_UNSPEC)
    assert inner.asked == [("hooks.example.com", 8443, socket.AF_UNSPEC)]
    assert results == [
        ResolveResult(
            hostname="hooks.example.com",
            host="93.184.216.34",
            port=8443,
            family=socket.AF_INET,
            proto=0,
            flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
        )
    ]
    await resolver.close()
    assert inner.closed


async def test_an_aiohttp_resolver_inside_is_vetted_too() -> None:
    resolver = VettingResolver(FixedDns("93.184.216.34", "10.1.2.3"))
    with pytest.raises(SsrfBlocked) as info:
        await resolver.resolve("hooks.example.com", 443, socket.AF_UNSPEC)
    assert (
        str(info.value) == "hooks.example.com resolves to 10.1.2.3, which is not a public address"
    )


async def test_without_an_inner_resolver_the_system_one_is_used_and_vetted() -> None:
    # `localhost` is answered by the machine's own resolver (hosts file): loopback, refused.
    resolver = VettingResolver()
    with pytest.raises(SsrfBlocked, match=r"^localhost resolves to (127\.0\.0\.1|::1), which"):
        await resolver.resolve("localhost", 443, socket.AF_INET)
    await resolver.close()
    allowed = VettingResolver(allow=parse_allow_cidrs("127.0.0.0/8"))
    [result] = await allowed.resolve("localhost", 80, socket.AF_INET)
    assert (result["host"], result["port"], result["family"]) == ("127.0.0.1", 80, socket.AF_INET)
    await allowed.close()


async def test_the_port_defaults_to_0_and_answers_keep_their_order_per_family() -> None:
    async def dns(host: str) -> list[str]:
        return ["2606:4700::1", "93.184.216.34", "1.1.1.1"]

    resolver = VettingResolver(dns)
    results = await resolver.resolve("hooks.example.com")
    assert [(r["host"], r["port"]) for r in results] == [("93.184.216.34", 0), ("1.1.1.1", 0)]
    with pytest.raises(OSError) as info:
        await VettingResolver(dns).resolve("hooks.example.com", 443, socket.AF_APPLETALK)
    assert str(info.value) == "no addresses of the requested family for hooks.example.com"


@pytest.mark.parametrize(
    ("answers", "error", "message"),
    [
        ((), OSError, "no addresses for hooks.example.com"),
        (
            ("nonsense",),
            SsrfBlocked,
            "hooks.example.com resolved to an unreadable address 'nonsense'",
        ),
    ],
)
async def test_resolver_failures_say_what_happened(
    answers: tuple[str, ...], error: type[Exception], message: str
) -> None:
    async def dns(host: str) -> list[str]:
        return list(answers)

    with pytest.raises(error) as info:
        await VettingResolver(dns).resolve("hooks.example.com", 443, socket.AF_UNSPEC)
    assert str(info.value) == message


async def test_a_host_that_is_no_valid_literal_is_refused_by_the_resolver() -> None:
    with pytest.raises(SsrfBlocked) as info:
        await VettingResolver().resolve("10.256.0.1", 443, socket.AF_INET)
    assert str(info.value) == "'10.256.0.1' ends in a number but is no IPv4 address"

"""SSRF vetting of webhook destinations: which addresses a delivery may connect to.

Only globally routable unicast addresses pass, unless an operator allow-list
(`CAUSEFLOW_WEBHOOK_ALLOW_CIDRS`) says otherwise. Everything here is pure except
`VettingResolver`, the aiohttp resolver that vets every DNS answer before a connection is made.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
ResolverFn: TypeAlias = Callable[[str], Awaitable[Sequence[str]]]

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Not globally reachable (IANA special-purpose registry), listed explicitly rather than left
# to `ipaddress.is_global`, whose tables change between Python releases.
_FORBIDDEN_V4: tuple[ipaddress.IPv4Network, ...] = (
    _V4("0.0.0.0/8"),  # "this network", incl. 0.0.0.0
    _V4("10.0.0.0/8"),  # RFC 1918
    _V4("100.64.0.0/10"),  # CGNAT shared space
    _V4("127.0.0.0/8"),  # loopback
    _V4("169.254.0.0/16"),  # link-local, incl. the cloud metadata 169.254.169.254
    _V4("172.16.0.0/12"),  # RFC 1918
    _V4("192.0.0.0/24"),  # IETF protocol assignments
    _V4("192.0.2.0/24"),  # TEST-NET-1
    _V4("192.88.99.0/24"),  # deprecated 6to4 relay anycast
    _V4("192.168.0.0/16"),  # RFC 1918
    _V4("198.18.0.0/15"),  # benchmarking
    _V4("198.51.100.0/24"),  # TEST-NET-2
    _V4("203.0.113.0/24"),  # TEST-NET-3
    _V4("224.0.0.0/4"),  # multicast
    _V4("240.0.0.0/4"),  # reserved, incl. broadcast 255.255.255.255
)

# IPv6 unicast on the Internet lives in 2000::/3; everything outside it (::, ::1, 100::/64,
# fc00::/7, fe80::/10, fec0::/10, ff00::/8, 64:ff9b:1::/48, ...) is refused by that rule alone.
_GLOBAL_V6 = _V6("2000::/3")
_FORBIDDEN_V6: tuple[ipaddress.IPv6Network, ...] = (
    _V6("2001::/23"),  # IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID
    _V6("2001:db8::/32"),  # documentation
    _V6("3fff::/20"),  # documentation (RFC 9637)
)
_MAPPED = _V6("::ffff:0:0/96")
_COMPATIBLE = _V6("::/96")
_SIX_TO_FOUR = _V6("2002::/16")
_NAT64 = _V6("64:ff9b::/96")

_NUMERIC_LABEL_RE = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")
_HOSTNAME_RE = re.compile(r"^[a-z0-9_.-]+$")
_URL_FORBIDDEN_CHARS_RE = re.compile(r"[\x00-\x20\x7f\\]")


class SsrfBlocked(Exception):
    """The destination is not a public address; `.reason` says which and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_allow_cidrs(text: str) -> tuple[IPNetwork, ...]:
    """Parse `"127.0.0.0/8,::1/128"` (commas or spaces between; a bare address is a /32 or /128)."""
    networks: list[IPNetwork] = []
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"allow-list entry {item!r} is not a CIDR network") from exc
    return tuple(networks)


def _in(ip: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    # `in` between different IP versions is simply False.
    return any(ip in net for net in networks)


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 form carries, with the form's name."""
    value = int(ip)
    if ip in _MAPPED:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF), "mapped"
    if ip in _COMPATIBLE and value > 1:  # :: and ::1 are themselves, not v4-compatible forms
        return ipaddress.IPv4Address(value & 0xFFFFFFFF), "compatible"
    if ip in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF), "6to4"
    if ip in _NAT64:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF), "nat64"
    return None


def _v4_forbidden(ip: ipaddress.IPv4Address) -> bool:
    return _in(ip, _FORBIDDEN_V4) or not ip.is_global


def is_forbidden(ip: IPAddress, allow: Sequence[IPNetwork] = ()) -> bool:
    """True when a delivery may not connect to `ip`.

    An address inside an `allow` network is permitted; for IPv6 forms that carry an IPv4
    address (mapped, compatible, 6to4, NAT64) the embedded address is checked against `allow`
    and, for mapped, 6to4 and NAT64, judged by the IPv4 rules. The deprecated v4-compatible
    form and Teredo are refused whatever they carry.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return not _in(ip, allow) and _v4_forbidden(ip)
    bare = ipaddress.IPv6Address(int(ip))
    if _in(bare, allow):
        return False
    if ip.scope_id:
        # A zone only makes sense for link-local destinations.
        return True
    embedded = _embedded_v4(bare)
    if embedded is not None:
        v4, form = embedded
        if _in(v4, allow):
            return False
        return form == "compatible" or _v4_forbidden(v4)
    return bare not in _GLOBAL_V6 or _in(bare, _FORBIDDEN_V6)


def _parse_v4_number(label: str, limit: int) -> int:
    if not label:
        raise ValueError("empty label in a numeric IPv4 address")
    if label[:2].lower() == "0x":
        value = int(label[2:] or "0", 16)
    elif len(label) > 1 and label.startswith("0"):
        value = int(label[1:], 8)  # ValueError for 8 or 9, as inet_aton refuses them
    else:
        value = int(label, 10)
    if value > limit:
        raise ValueError("numeric IPv4 address part out of range")
    return value


def parse_host_literal(host: str) -> IPAddress | None:
    """The address a URL host denotes literally, or None when it is a name.

    IPv4 is read the way `inet_aton` and browsers read it: 1 to 4 parts, each decimal, octal
    (leading 0) or hex (0x), the last filling the remaining bytes, so `2130706433`,
    `0177.0.0.1`, `0x7f.0.0.1` and `127.1` all mean 127.0.0.1. A host whose last label is
    numeric but which is no valid address raises ValueError, as do IPv6 zone ids.
    """
    text = host.strip()
    if text.startswith("[") or text.endswith("]"):
        if not (text.startswith("[") and text.endswith("]")):
            raise ValueError(f"unbalanced brackets in host {host!r}")
        text = text[1:-1]
        if ":" not in text:
            raise ValueError(f"only IPv6 addresses go in brackets: {host!r}")
    if "%" in text:
        raise ValueError(f"zone ids and percent signs are not allowed in a host: {host!r}")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError as exc:
            raise ValueError(f"{host!r} is not a valid IPv6 address") from exc
    name = text[:-1] if text.endswith(".") else text
    labels = name.split(".")
    if not _NUMERIC_LABEL_RE.match(labels[-1]):
        return None
    if len(labels) > 4:
        raise ValueError(f"{host!r} ends in a number but is no IPv4 address")
    try:
        head = [_parse_v4_number(label, 0xFF) for label in labels[:-1]]
        tail = _parse_v4_number(labels[-1], (1 << (8 * (5 - len(labels)))) - 1)
    except ValueError as exc:
        raise ValueError(f"{host!r} ends in a number but is no IPv4 address") from exc
    value = tail
    for position, part in enumerate(head):
        value |= part << (8 * (3 - position))
    return ipaddress.IPv4Address(value)


def vet_url(url: str, *, allow_http: bool, allow: Sequence[IPNetwork]) -> URL:
    """Check a destination URL and return it parsed exactly as the HTTP client will use it.

    Raises ValueError for a malformed URL (scheme, host, userinfo, port) and SsrfBlocked for a
    host that literally names a refused address (or `localhost`). Names are vetted later, on
    every resolution, by `VettingResolver`.
    """
    if _URL_FORBIDDEN_CHARS_RE.search(url):
        raise ValueError("the URL contains whitespace, control characters or backslashes")
    try:
        parsed = URL(url)
        port = parsed.port
    except ValueError as exc:
        raise ValueError(f"the URL is malformed: {exc}") from exc
    scheme = parsed.scheme.lower()
    if scheme != "https" and not (allow_http and scheme == "http"):
        raise ValueError("the URL must use https" + (" or http" if allow_http else ""))
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise ValueError("the URL must not carry a user name or password")
    host = parsed.raw_host
    if not host:
        raise ValueError("the URL has no host")
    if port is None or not 0 < port < 65536:
        raise ValueError("the URL has an invalid port")
    # raw_host is what the client connects to (after IDNA and Unicode normalisation), so it is
    # the string vetted here; a lenient second parser could disagree with it.
    literal = parse_host_literal(host)
    if literal is not None:
        if is_forbidden(literal, allow):
            raise SsrfBlocked(f"{literal} is not a public address")
        return parsed
    if not _HOSTNAME_RE.match(host):
        raise ValueError(f"the URL host {host!r} is not a valid name")
    bare = host.rstrip(".")
    if (bare == "localhost" or bare.endswith(".localhost")) and all(
        is_forbidden(ipaddress.ip_address(a), allow) for a in ("127.0.0.1", "::1")
    ):
        raise SsrfBlocked(f"{host} is a loopback name")
    return parsed


def check_url(url: str, *, allow_http: bool, allow: Sequence[IPNetwork]) -> None:
    """Create/patch-time check of a subscription URL (ValueError or SsrfBlocked → 422)."""
    vet_url(url, allow_http=allow_http, allow=allow)


class VettingResolver(AbstractResolver):
    """aiohttp resolver that refuses a host when any of its addresses is not public.

    It resolves on every call (aiohttp's connector cache, `ttl_dns_cache`, decides how long an
    answer is reused) and returns the vetted addresses themselves, so the connection goes to
    an address that was checked and no second lookup happens. A single refused address fails
    the whole answer rather than being dropped: a name that mixes public and private answers
    is a rebinding attempt or a misconfiguration, and either way the attempt should say so.
    """

    def __init__(
        self,
        inner: AbstractResolver | ResolverFn | None = None,
        *,
        allow: Sequence[IPNetwork] = (),
    ) -> None:
        self._inner = inner
        self._allow = tuple(allow)

    async def _lookup(self, host: str, port: int, family: socket.AddressFamily) -> list[str]:
        if self._inner is None:
            # Created on first use: ThreadedResolver binds to the running loop.
            self._inner = ThreadedResolver()
        if isinstance(self._inner, AbstractResolver):
            answers = await self._inner.resolve(host, port, family=family)
            return [a["host"] for a in answers]
        return list(await self._inner(host))

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            literal = parse_host_literal(host)
        except ValueError as exc:
            raise SsrfBlocked(str(exc)) from exc
        raw = [str(literal)] if literal is not None else await self._lookup(host, port, family)
        if not raw:
            raise OSError(f"no addresses for {host}")
        vetted: list[IPAddress] = []
        for text in raw:
            try:
                ip = ipaddress.ip_address(text)
            except ValueError as exc:
                raise SsrfBlocked(f"{host} resolved to an unreadable address {text!r}") from exc
            if is_forbidden(ip, self._allow):
                raise SsrfBlocked(f"{host} resolves to {ip}, which is not a public address")
            vetted.append(ip)
        results: list[ResolveResult] = []
        for ip in vetted:
            ip_family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, ip_family):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=str(ip),
                    port=port,
                    family=ip_family,
                    proto=0,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        if not results:
            raise OSError(f"no addresses of the requested family for {host}")
        return results

    async def close(self) -> None:
        if isinstance(self._inner, AbstractResolver):
            await self._inner.close()

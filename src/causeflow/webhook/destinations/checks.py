"""Pure checks of a subscription's destination at create/patch time (no I/O, no broker client).

A broker URL must use one of its type's schemes, name a host (a literal address must pass the
SSRF rules, as webhook URLs do; names are vetted at every connection) and a valid port. Its
credentials (`user:password@`) are write-only: the URL shown and stored in clear has the
password replaced by `****` (a lone user name, such as a NATS token, too), and the URL with
them is sealed apart. A PATCH that sends the shown URL back (same scheme, host and port) keeps
the stored credentials.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yarl
from pydantic import ValidationError

from causeflow.errors import ValidationFailed
from causeflow.webhook.destinations.options import SPECS, port_of
from causeflow.webhook.destinations.registry import WEBHOOK
from causeflow.webhook.ssrf import IPNetwork, is_forbidden, parse_host_literal

MASK = "****"
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_HOSTNAME = re.compile(r"^[a-z0-9_.-]+$")


@dataclass(frozen=True, slots=True)
class BrokerDestination:
    shown_url: str  # credentials masked: the `url` column and the API's
    sealed_url: str | None  # the URL with its credentials (to seal), None without any
    options: dict[str, Any]


def _url_error(message: str) -> ValidationFailed:
    return ValidationFailed.at("url", message)


def parse_broker_url(type_: str, url: str, allow: Sequence[IPNetwork]) -> yarl.URL:
    """The URL parsed, or a 422 naming `url`."""
    spec = SPECS[type_]
    if _FORBIDDEN_CHARS.search(url):
        raise _url_error("the URL contains whitespace, control characters or backslashes")
    try:
        parsed = yarl.URL(url)
        port = port_of(spec, parsed.scheme.lower(), parsed.port)
    except (ValueError, IndexError) as exc:  # yarl raises IndexError for some bad hosts
        raise _url_error(f"the URL is malformed: {exc or type(exc).__name__}") from exc
    if parsed.scheme.lower() not in spec.schemes:
        schemes = " or ".join(f"{s}://" for s in sorted(spec.schemes))
        raise _url_error(f"a {type_} destination needs a {schemes} URL")
    if parsed.fragment:
        raise _url_error("the URL must not have a fragment")
    if not 0 < port < 65536:
        raise _url_error("the URL has an invalid port")
    _check_host(parsed.raw_host or "", allow)
    return parsed


def _check_host(host: str, allow: Sequence[IPNetwork]) -> None:
    if not host:
        raise _url_error("the URL has no host")
    try:
        literal = parse_host_literal(host)
    except ValueError as exc:
        raise _url_error(str(exc)) from exc
    if literal is not None:
        if is_forbidden(literal, allow):
            raise _url_error(f"refused destination: {literal} is not a public address")
        return
    if not _HOSTNAME.match(host):
        raise _url_error(f"the URL host {host!r} is not a valid name")
    bare = host.rstrip(".")
    if (bare == "localhost" or bare.endswith(".localhost")) and all(
        is_forbidden(ipaddress.ip_address(a), allow) for a in ("127.0.0.1", "::1")
    ):
        raise _url_error(f"refused destination: {host} is a loopback name")


def mask(url: yarl.URL) -> yarl.URL:
    """The URL as shown: a password becomes `****`, and so does a lone user name."""
    if url.password is not None:
        return url.with_password(MASK)
    if url.user:
        return url.with_user(MASK)
    return url


def _same_place(a: yarl.URL, b: yarl.URL) -> bool:
    return (a.scheme.lower(), a.raw_host, a.port) == (b.scheme.lower(), b.raw_host, b.port)


def keep_credentials(new: yarl.URL, stored: yarl.URL | None) -> yarl.URL:
    """A PATCH's URL with `****` in place of the stored credentials (same place only)."""
    masked = new.password == MASK or (new.password is None and new.user == MASK)
    if not masked:
        return new
    if stored is None or not _same_place(new, stored):
        raise _url_error(
            f"{MASK} keeps the stored credentials only for the same scheme, host and port"
        )
    if new.password == MASK:
        if stored.password is None:
            raise _url_error(f"no stored password to keep for {MASK}")
        return new.with_user(new.user).with_password(stored.password)
    if not stored.user or stored.password is not None:
        raise _url_error(f"no stored credentials to keep for {MASK}")
    return new.with_user(stored.user)


def check_options(type_: str, options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The type's options validated and normalized (None for webhooks), or a 422."""
    if type_ == WEBHOOK:
        if options is not None:
            raise ValidationFailed.at("options", "a webhook subscription takes no options")
        return None
    if options is None:
        raise ValidationFailed.at("options", f"a {type_} destination needs its options")
    try:
        model = SPECS[type_].options.model_validate(dict(options))
    except ValidationError as exc:
        errors = [
            {
                "path": ".".join(["options", *(str(p) for p in err["loc"])]),
                "message": err["msg"],
            }
            for err in exc.errors()
        ]
        raise ValidationFailed(errors[0]["message"], details={"errors": errors}) from exc
    return model.model_dump()


def check_broker(
    type_: str,
    url: str,
    options: Mapping[str, Any] | None,
    *,
    allow: Sequence[IPNetwork],
    stored: str | None = None,
) -> BrokerDestination:
    """A broker destination checked; `stored` is the current URL with credentials (PATCH)."""
    parsed = parse_broker_url(type_, url, allow)
    if stored is not None:
        parsed = keep_credentials(parsed, yarl.URL(stored))
    elif MASK in (parsed.user, parsed.password):
        raise _url_error(f"{MASK} stands for stored credentials; there are none yet")
    checked = check_options(type_, options) or {}
    has_credentials = parsed.user is not None or parsed.password is not None
    return BrokerDestination(
        shown_url=str(mask(parsed)),
        sealed_url=str(parsed) if has_credentials else None,
        options=checked,
    )

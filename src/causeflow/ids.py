"""Prefixed, time-sortable identifiers: `<prefix>_` + a 26-character ULID body.

The body is 48 bits of milliseconds and 80 random bits in Crockford base32, so ids sort by
creation time; within one millisecond one process increments the random part to stay sortable.
"""

from __future__ import annotations

import os
import re
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIXES = frozenset(
    {
        "ten",
        "usr",
        "key",
        "evt",
        "sub",
        "msg",
        "att",
        "inc",
        "alr",
        "rem",
        "apr",
        "int",
        "trg",
        "ptn",
        "tkt",
        "ses",
    }
)
ID_RE = re.compile(r"^([a-z]{3})_([0-9A-HJKMNP-TV-Z]{26})$")

_lock = threading.Lock()
_last_ms = 0
_last_rand = 0
_last_prefix = "0" * 10  # the encoded time of `_last_ms` (its first 10 digits)


# Two base32 digits per 10 bits: a ULID body (130 bits, the top two zero) is 13 lookups.
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)


def _encode(value: int, length: int) -> str:
    """`value` as `length` Crockford base32 digits (length even), most significant first."""
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in range(5 * (length - 2), -1, -10)])


def ulid_body(now_ms: int | None = None) -> str:
    """The time (48 bits, 10 digits with two leading zero bits) then the random part (80 bits,
    16 digits): the digit boundary falls between them, so the time's digits are encoded once per
    millisecond."""
    global _last_ms, _last_rand, _last_prefix
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        if ms <= _last_ms:
            _last_rand = (_last_rand + 1) & ((1 << 80) - 1)
        else:
            _last_ms = ms
            _last_rand = int.from_bytes(os.urandom(10), "big") >> 1
            _last_prefix = _encode(ms, 10)
        rand = _last_rand
        prefix = _last_prefix
    return prefix + _encode(rand, 16)


def new_id(prefix: str, now_ms: int | None = None) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{ulid_body(now_ms)}"


def is_id(value: str, prefix: str) -> bool:
    match = ID_RE.match(value)
    return bool(match) and match.group(1) == prefix  # type: ignore[union-attr]

"""JSON encode/decode on hot paths (orjson), in one place.

`loads` reads what the service wrote itself. `loads_body` reads what a client sent: every JSON
request body (API routes, inbound alerts, SNS envelopes) goes through it, so every route accepts
and refuses the same documents. On top of orjson's own checks (UTF-8, no `NaN`/`Infinity`, no
lone surrogates, no trailing commas) it refuses what the service could not write back or
store faithfully:

- documents nested deeper than `MAX_DEPTH` levels (the encoder stops at 254, and stored
  bodies are embedded a few levels deeper in event envelopes);
- integers outside the signed 64-bit range (orjson would turn them into inexact floats, other
  readers and the databases' integers stop there);
- objects with the same key twice (readers disagree on which one counts: the first, the last,
  or an error), so no two parts of a system can read one document two ways.

UTF-8 with a byte order mark, UTF-16 and UTF-32 (which the JSON RFC allows a reader to accept)
are decoded first, as the standard library would.

The checks cost a few microseconds per kilobyte, all of it in C: the parsed value is written
out again with orjson, and a duplicate key shows as fewer strings in that text than in the body
(each string has two unescaped quotes, and a dropped member takes its key with it); one pass of
`bytes.translate` tells whether the body holds enough brackets to be deep (then the writing is
made to stop at MAX_DEPTH) or a run of 19 digits that may be a large integer (then the body is
read again by the standard library, which hands over every integer literal's text).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import orjson

MAX_DEPTH = 128
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

# Every digit becomes "0", every opening bracket "[", anything else a space.
_SHAPE = bytes(
    ord("0") if b in b"0123456789" else ord("[") if b in b"[{" else ord(" ") for b in range(256)
)
_LONG_DIGITS = b"0" * 19  # shorter integers are all within the 64-bit range
# What may come before a number literal (or before its minus sign).
_BEFORE_NUMBER = frozenset(b"[,: \t\r\n")
_FLOAT = (b".", b"e", b"E")
_INTEGER_LITERAL = re.compile(rb"-?[0-9]+(?![0-9.eE])")
_INT_RANGE = (
    "an integer is outside the signed 64-bit range (-2^63 to 2^63-1); send large numbers as strings"
)


class JsonRefused(json.JSONDecodeError):
    """A request body the service does not accept as JSON; `msg` says why.

    A `json.JSONDecodeError`, so that frameworks treating those as the client's mistake do so
    here too (FastAPI answers 422 with the reason).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)

    def __str__(self) -> str:
        return self.msg


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def json_body(value: Any) -> bytes:
    """An HTTP answer's JSON body: `value` encoded, then a newline. A `str` or `bytes` value is
    JSON text already (a stored envelope): only the newline is added."""
    if isinstance(value, str):
        return value.encode() + b"\n"
    if isinstance(value, bytes | bytearray):
        return bytes(value) + b"\n"
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)


def dumps_str(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def loads_body(data: bytes | bytearray | memoryview | str) -> Any:
    """A client's JSON document, or `JsonRefused` saying why it is not accepted."""
    try:
        value = orjson.loads(data)
        body = data if type(data) is bytes else _as_bytes(data)
    except orjson.JSONDecodeError as exc:
        body = _as_bytes(data)
        other = _from_other_encoding(body)
        if other is None:
            raise JsonRefused(_syntax_reason(exc, body)) from None
        body = other
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as again:
            raise JsonRefused(_syntax_reason(again, body)) from None
    if len(body) < len(_LONG_DIGITS):
        shape = b""  # too short to nest deeply or to write a large integer
    else:
        shape = body.translate(_SHAPE)
    if shape.count(b"[") > MAX_DEPTH:
        canonical = _encode_within_depth(value)
    else:
        canonical = orjson.dumps(value)
    # Every string has two delimiting quotes, and every quote inside one is written `\"` by
    # the encoder; the body writes them `\"` too unless it uses `\u0022`. So without that
    # spelling, equal quote counts mean as many strings, and a dropped member (which takes
    # at least its key along) shows as fewer.
    if b"\\" in body and b"\\u0022" in body:
        same = _delimiters(body) == _delimiters(canonical)
    else:
        same = body.count(b'"') == canonical.count(b'"')
    if not same:
        raise JsonRefused("an object has the same key twice")
    if _LONG_DIGITS in shape and _may_hold_large_integer(body, shape):
        _check_integers(body)
    return value


def _as_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(data, str):
        # orjson has read it, so it holds no lone surrogate
        return data.encode("utf-8", "surrogatepass")
    return bytes(data)


def _from_other_encoding(body: bytes) -> bytes | None:
    """The body as UTF-8 when it is UTF-8 with a byte order mark, UTF-16 or UTF-32 (which
    start with a byte order mark or have a zero byte among their first two), else None."""
    if body[:3] == b"\xef\xbb\xbf":
        return body[3:]
    if body[:1] not in (b"\xff", b"\xfe") and b"\x00" not in body[:2]:
        return None
    encoding = json.detect_encoding(body)
    if encoding == "utf-8":
        return None
    try:
        return body.decode(encoding).encode("utf-8")
    except UnicodeError:
        raise JsonRefused(f"not valid {encoding.upper()} text") from None


def _syntax_reason(exc: orjson.JSONDecodeError, body: bytes) -> str:
    if not body.strip():
        return "the body is empty"
    # NaN and Infinity (a common non-standard extension) get a reason of their own.
    at = body[exc.pos : exc.pos + 9].lstrip(b"-") if exc.pos >= 0 else b""
    if at.startswith((b"NaN", b"Infinity")):
        return "NaN and Infinity are not JSON numbers"
    if "infinity" in exc.msg:  # a literal beyond the double range
        if _INTEGER_LITERAL.match(body, max(exc.pos, 0)):
            return _INT_RANGE
        return "a number is beyond the range of a double"
    if "UTF-8" in exc.msg:
        return "not valid UTF-8 text"
    if "surrogate" in exc.msg:
        return "a string holds half of a surrogate pair (a lone \\ud800-\\udfff escape)"
    return str(exc)


@functools.cache
def _encoder_depth() -> int:
    """How deep orjson still writes (254 in the versions this was written with)."""
    value: Any = 0
    for depth in range(1, 4096):
        value = [value]
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError:
            return depth - 1
    return 4095


def _encode_within_depth(value: Any) -> bytes:
    """`value` written out (wrapped in lists), or JsonRefused if it nests deeper than
    MAX_DEPTH levels: measured by the encoder itself, whose limit the wrapping lists bring
    down to MAX_DEPTH, in C at full speed. The wrapping adds brackets only, no quotes."""
    wrapped = value
    for _ in range(_encoder_depth() - MAX_DEPTH):
        wrapped = [wrapped]
    try:
        return orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        raise JsonRefused(f"nested deeper than {MAX_DEPTH} levels") from None


def _delimiters(text: bytes) -> int:
    """How many quotes of a JSON text open or close a string (twice its number of strings):
    every quote but the escaped ones. Escapes pair up from the left (`\\\\` is one backslash),
    so once the backslash pairs are gone, a quote after a backslash is an escaped one."""
    if b"\\" not in text:
        return text.count(b'"')
    unpaired = text.replace(b"\\\\", b"")
    return unpaired.count(b'"') - unpaired.count(b'\\"')


def _may_hold_large_integer(body: bytes, shape: bytes) -> bool:
    """Whether a run of 19 or more digits might be an integer beyond 64 bits. Not one right
    after a quote or a letter (ids, hashes, digits in text: a number cannot start there), nor
    one followed by a fraction or an exponent (a float), nor 19 digits within the range."""
    at = shape.find(_LONG_DIGITS)
    while at >= 0:
        space, bracket = shape.find(b" ", at), shape.find(b"[", at)
        end = space if bracket < 0 or 0 <= space < bracket else bracket
        if end < 0:
            end = len(shape)
        before = at - 1
        negative = before >= 0 and body[before] == 0x2D  # "-"
        if negative:
            before -= 1
        if (before < 0 or body[before] in _BEFORE_NUMBER) and body[end : end + 1] not in _FLOAT:
            if end - at > len(_LONG_DIGITS) or int(body[at:end]) > INT_MAX + negative:
                return True
        at = shape.find(_LONG_DIGITS, end)
    return False


class _OutOfRange(ValueError):
    pass


def _checked_int(text: str) -> int:
    if len(text) > 20:  # also spares int() a huge digit string
        raise _OutOfRange
    number = int(text)
    if not INT_MIN <= number <= INT_MAX:
        raise _OutOfRange
    return number


def _check_integers(body: bytes) -> None:
    """Read the body again with the standard library, which hands over each integer literal's
    text: orjson has already turned one beyond 64 bits into an (inexact) float."""
    try:
        json.loads(body, parse_int=_checked_int)
    except _OutOfRange:
        raise JsonRefused(_INT_RANGE) from None
    except (ValueError, RecursionError):
        raise JsonRefused("not valid JSON") from None

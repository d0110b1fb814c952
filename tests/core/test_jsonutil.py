"""`jsonutil.loads_body`: the one reader of client JSON, and where its limits lie."""

from __future__ import annotations

import json
import re

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causeflow.jsonutil import (
    INT_MAX,
    INT_MIN,
    MAX_DEPTH,
    JsonRefused,
    _delimiters,
    _encoder_depth,
    loads_body,
)

pytestmark = pytest.mark.unit


def nested(depth: int, inner: bytes = b"1") -> bytes:
    """`depth` levels of alternating arrays and objects around `inner`."""
    out = inner
    for level in range(depth):
        out = b'{"a":' + out + b"}" if level % 2 else b"[" + out + b"]"
    return out


def refused(body: bytes | str) -> str:
    with pytest.raises(JsonRefused) as info:
        loads_body(body)
    return str(info.value)


def test_depth_limit_is_exact_and_below_what_the_encoder_writes():
    assert MAX_DEPTH + 8 < _encoder_depth()  # room for the envelopes bodies are stored in
    assert loads_body(nested(MAX_DEPTH)) is not None
    for depth in (MAX_DEPTH + 1, 255, 300, 1000):
        assert "nested deeper" in refused(nested(depth))
    # many brackets side by side are not depth
    wide = b"[" + b",".join([b"[]"] * 1000) + b"]"
    assert len(loads_body(wide)) == 1000


@pytest.mark.parametrize(
    "literal",
    [str(INT_MAX), str(INT_MIN), "0", "-0", str(10**18), "1.5e300", "12345678901234567890.5"],
)
def test_numbers_that_are_kept(literal: str):
    body = f'{{"n": {literal}, "l": [1, {literal}]}}'.encode()
    assert loads_body(body) == json.loads(body)


@pytest.mark.parametrize(
    "number", [INT_MAX + 1, INT_MIN - 1, 2**64 - 1, 2**64, 2**70, -(2**70), 10**400]
)
def test_integers_beyond_64_bits_are_refused_anywhere(number: int):
    text = str(number)
    for body in (
        text,
        f"[{text}]",
        f'{{"a": {text}}}',
        f'{{"a": "x", "b": [{{"c": [1, {text}]}}]}}',
        f'{{"a":\n\t-0, "b":{text}}}',
    ):
        assert "64-bit" in refused(body.encode()), body


def test_long_digit_runs_in_strings_are_not_integers():
    body = (
        b'{"id": "12345678901234567890123", "t": "x 98765432109876543210",'
        b' "k": "-11111111111111111111"}'
    )
    assert loads_body(body)["id"] == "12345678901234567890123"


@pytest.mark.parametrize(
    "body", [b"NaN", b"[NaN]", b'{"a": Infinity}', b'{"a": -Infinity}', b"[1e400]", b"[-1e999]"]
)
def test_non_finite_numbers_are_refused(body: bytes):
    refused(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "a": 2}',
        b'{"": 1, "": 1}',
        b'{"a": {"b": 1, "b": 1}}',
        b'[{"ok": 1}, {"x": [], "y": 0, "x": []}]',
        b'{"k\\u0041": 1, "kA": 2}',  # the same key, spelt two ways
        b'{"a": "x\\"", "a": 1}',
        b'{"a\\u0022": 1, "a\\"": 2}',  # a quote in a key, spelt two ways
        b'{"\\u0022": "\\u0022", "\\"": 1}',
        nested(MAX_DEPTH - 1, b'{"d": 1, "d": 1}'),
    ],
)
def test_duplicate_keys_are_refused(body: bytes):
    assert "same key twice" in refused(body)


@pytest.mark.parametrize(
    "body",
    [
        b'[{"a": 1}, {"a": 1}]',
        b'{"a": {"a": {"a": 1}}}',
        b'{"a": "x\\\\", "b": "\\"\\\\\\"", "c": "\\u0022"}',
        b'{"a\\"": 1, "a": 2}',
        b'{"\\u0022": 1, "b": "\\"\\u0022\\"", "c": {"\\u0022": [1]}}',
    ],
)
def test_equal_keys_in_different_objects_are_fine(body: bytes):
    assert loads_body(body) == json.loads(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a": "\xff"}', "UTF-8"),
        (b'["\\ud800"]', "surrogate"),
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"a": 1,}', "trailing comma"),
        (b'["a\x01b"]', "control character"),
        (b"\xff\xfe\x00", "UTF-16"),
    ],
)
def test_unreadable_text_is_refused_with_its_reason(body: bytes, reason: str):
    assert reason in refused(body)


def test_other_unicode_encodings_are_read():
    doc = {"text": "café ☕"}
    for encoding in ("utf-8-sig", "utf-16", "utf-16-le", "utf-32"):
        assert loads_body(json.dumps(doc, ensure_ascii=False).encode(encoding)) == doc
    assert loads_body('{"a": [1]}') == {"a": [1]}


_ESCAPED = re.compile(rb'(\\+)"')


@given(st.binary(max_size=40).map(lambda b: bytes(b'\\"a'[x % 3] for x in b)))
@settings(max_examples=300, deadline=None)
def test_delimiter_count_matches_a_scan(text: bytes):
    expected = text.count(b'"') - sum(len(run) % 2 for run in _ESCAPED.findall(text))
    assert _delimiters(text) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(INT_MIN, INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet='ab"\\\n', max_size=3), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
@settings(max_examples=200, deadline=None)
def test_documents_within_the_limits_read_back_unchanged(value: object):
    for body in (orjson.dumps(value), json.dumps(value, indent=1).encode()):
        assert loads_body(body) == value


@given(st.dictionaries(st.text(alphabet='ab"\\', max_size=3), json_values, min_size=1, max_size=4))
@settings(max_examples=100, deadline=None)
def test_any_repeated_member_is_found(doc: dict[str, object]):
    key = next(iter(doc))
    body = orjson.dumps(doc)
    repeated = body[:-1] + b"," + orjson.dumps(key) + b":0}"
    assert "same key twice" in refused(repeated)


def _ints(value: object) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [n for item in value for n in _ints(item)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _ints(item)]
    return []


any_numbers = st.recursive(
    st.integers(-(2**70), 2**70)
    | st.integers(INT_MAX - 3, INT_MAX + 3)
    | st.integers(INT_MIN - 3, INT_MIN + 3)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.from_regex(r"[a-z:= \-]{0,3}[0-9]{17,22}", fullmatch=True),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c"]), children, max_size=3)
    ),
    max_leaves=8,
)


@given(any_numbers, st.sampled_from([None, 1]))
@settings(max_examples=300, deadline=None)
def test_integers_are_refused_exactly_when_one_is_beyond_64_bits(value: object, indent: object):
    body = json.dumps(value, indent=indent).encode()
    beyond = any(not INT_MIN <= n <= INT_MAX for n in _ints(value))
    if beyond:
        assert "64-bit" in refused(body)
    else:
        assert loads_body(body) == json.loads(body)

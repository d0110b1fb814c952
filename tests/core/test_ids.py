"""Prefixed ULID identifiers: the encoding, the order, the shape."""

from __future__ import annotations

import random

import pytest

from causeflow import ids

pytestmark = pytest.mark.unit


def digit_by_digit(value: int, length: int) -> str:
    """The plain definition: Crockford base32, most significant digit first."""
    out = []
    for _ in range(length):
        out.append(ids._ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def test_the_body_is_time_then_randomness_in_crockford_base32():
    rng = random.Random(5)
    for _ in range(2000):
        ms, rand = rng.getrandbits(48), rng.getrandbits(80)
        assert ids._encode((ms << 80) | rand, 26) == digit_by_digit(ms, 10) + digit_by_digit(
            rand, 16
        )
    assert ids._encode(0, 26) == "0" * 26
    assert ids._encode((1 << 128) - 1, 26) == "7" + "Z" * 25


def test_ids_sort_by_creation_even_within_one_millisecond(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ids, "_last_ms", 0)  # as in a new process (restored afterwards)
    made = [ids.new_id("evt", 1_700_000_000_000) for _ in range(500)]
    made += [ids.new_id("evt", 1_700_000_000_001) for _ in range(10)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(ids.ID_RE.match(i) and ids.is_id(i, "evt") for i in made)
    assert made[0][4:14] == digit_by_digit(1_700_000_000_000, 10)


def test_unknown_prefixes_are_refused():
    with pytest.raises(ValueError):
        ids.new_id("xyz")

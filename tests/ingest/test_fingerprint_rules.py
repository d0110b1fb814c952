"""Fingerprint rules: stable, unambiguous, bounded at 255 characters (docs/reference.md §6)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# equivalent: causeflow.ingest.fingerprint.x_clamp_fingerprint__mutmut_12 -- "UTF-8" and
#   "utf-8" name the same codec.
from causeflow.ingest.fingerprint import (
    MAX_FINGERPRINT_LENGTH,
    clamp_fingerprint,
    labels_fingerprint,
    scope_key,
    stable_hash,
)

pytestmark = pytest.mark.unit


def test_stable_hash_is_32_hex_characters_of_sha256_over_a_json_list() -> None:
    assert stable_hash("a", "b") == hashlib.sha256(b'["a","b"]').hexdigest()[:32]
    assert stable_hash() == hashlib.sha256(b"[]").hexdigest()[:32]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.text(), max_size=4), st.lists(st.text(), max_size=4))
def test_different_parts_never_share_a_hash(left: list[str], right: list[str]) -> None:
    assert (stable_hash(*left) == stable_hash(*right)) is (left == right)


def test_a_plain_join_would_collide_but_the_hash_does_not() -> None:
    assert stable_hash("a,b", "c") != stable_hash("a", "b,c")


@pytest.mark.parametrize("length", [0, 1, 254, 255])
def test_fingerprints_up_to_255_characters_are_kept(length: int) -> None:
    value = "f" * length
    assert MAX_FINGERPRINT_LENGTH == 255
    assert clamp_fingerprint(value) == value
    assert clamp_fingerprint(f"  {value}\n") == value


@pytest.mark.parametrize("length", [256, 1000])
def test_longer_fingerprints_become_sha256_of_them(length: int) -> None:
    value = "é" * length
    expected = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    assert clamp_fingerprint(value) == expected
    assert clamp_fingerprint(f" {value} ") == expected


def test_a_lone_surrogate_is_hashed_not_refused() -> None:
    value = "\ud800" * 300
    expected = "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()
    assert clamp_fingerprint(value) == expected


def test_a_label_set_has_one_fingerprint_whatever_its_order() -> None:
    one = labels_fingerprint({"alertname": "Disk", "instance": "db1"})
    assert one == labels_fingerprint({"instance": "db1", "alertname": "Disk"})
    assert one == stable_hash("alertname=Disk", "instance=db1")
    assert one != labels_fingerprint({"alertname": "Disk", "instance": "db2"})
    assert labels_fingerprint({}) == stable_hash()


@pytest.mark.parametrize(
    ("scope", "key"),
    [
        ("b:2, a:1", "a:1,b:2"),
        ("a:1,a:1", "a:1"),
        (" , ,", ""),
        ("", ""),
        ("z, ,a", "a,z"),
    ],
)
def test_a_scope_key_is_its_tags_sorted_deduplicated_and_trimmed(scope: str, key: str) -> None:
    assert scope_key(scope) == key

"""Pure helpers that derive stable alert fingerprints.

A fingerprint is the key the ingest service de-duplicates on, together with tenant and provider.
It must be stable across deliveries of the same alert, so every derived key is a hash over an
unambiguous encoding of its parts (never over `repr`, dict order or the wall clock).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import orjson

# Long enough for every provider's native ids (PagerDuty dedup keys may be 255 characters);
# anything longer is replaced by its hash so storage keys stay bounded.
MAX_FINGERPRINT_LENGTH = 255


def stable_hash(*parts: str) -> str:
    """Hex SHA-256 (first 32 characters) of the parts, encoded as a JSON list.

    The JSON encoding keeps ("a,b", "c") and ("a", "b,c") apart, which a plain join would not.
    """
    return hashlib.sha256(orjson.dumps(list(parts))).hexdigest()[:32]


def clamp_fingerprint(value: str) -> str:
    """The value stripped, or `sha256:<hex>` of it when it is longer than the storage bound."""
    value = value.strip()
    if len(value) <= MAX_FINGERPRINT_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def labels_fingerprint(labels: Mapping[str, str]) -> str:
    """A fingerprint of a label set, independent of key order (Alertmanager's idea of identity)."""
    return stable_hash(*(f"{key}={labels[key]}" for key in sorted(labels)))


def scope_key(scope: str) -> str:
    """Normalize a comma-separated tag scope (`b:2, a:1` -> `a:1,b:2`) for use in a key."""
    tags = sorted({tag.strip() for tag in scope.split(",") if tag.strip()})
    return ",".join(tags)

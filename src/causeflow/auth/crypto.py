"""Secrets at rest: API keys are hashed, signing secrets sealed with AES-GCM.

`SecretBox` seals strings under the service's current 256-bit sealing key and opens values
sealed under any key it holds. Sealed values are `v2.<key id>.<base64(nonce|ciphertext)>`: the
key id names the key, so a value sealed before a rotation still opens while both keys are held.
Values written before key ids existed are `v1.<base64(nonce|ciphertext)>`; they are tried
against every key held. Key ids are derived from the key (a truncated SHA-256), so they reveal
nothing and need no bookkeeping.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

API_KEY_PREFIX = "cflo_"
_AAD = b"causeflow"
KEY_ID_CHARS = 12

# A sealed value, alone or inside a JSON document (base64 never contains a quote).
SEALED_VALUE = re.compile(
    r"(?<![A-Za-z0-9+/=._-])v(?:1|2\.[0-9a-f]{" + str(KEY_ID_CHARS) + r"})\.[A-Za-z0-9+/]+={0,2}"
)


class UnknownSealingKey(ValueError):
    """A value sealed under a key this box does not hold."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"causeflow sealing key id\0" + key).hexdigest()[:KEY_ID_CHARS]


def strict_key_bytes(text: str) -> bytes | None:
    """32 bytes from 64 hex characters or base64 of 32 bytes; None for anything else."""
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError, binascii.Error):
        return None
    return decoded if len(decoded) == 32 else None


def key_bytes(text: str) -> bytes:
    """A sealing key from its text: 64 hex chars or base64 of 32 bytes; anything else (a
    passphrase) is stretched with SHA-256."""
    return strict_key_bytes(text) or hashlib.sha256(text.encode()).digest()


class SecretBox:
    """Seals under `key`; opens under `key` and every key in `older`."""

    def __init__(self, key: bytes, older: Sequence[bytes] = ()) -> None:
        self._aeads: dict[str, AESGCM] = {}
        for raw in (key, *older):
            if len(raw) != 32:
                raise ValueError("a sealing key must be 32 bytes")
            self._aeads.setdefault(key_id(raw), AESGCM(raw))
        self.key_id = key_id(key)
        self._current = self._aeads[self.key_id]

    @property
    def key_ids(self) -> list[str]:
        """The current key's id first, then the others'."""
        return list(self._aeads)

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        ct = self._current.encrypt(nonce, plaintext.encode(), _AAD)
        return f"v2.{self.key_id}." + base64.b64encode(nonce + ct).decode()

    def open(self, sealed: str) -> str:
        if sealed.startswith("v2."):
            kid, _, body = sealed[3:].partition(".")
            aead = self._aeads.get(kid)
            if aead is None:
                raise UnknownSealingKey(f"sealed under key {kid}, which is not held")
            return _decrypt(aead, body)
        if sealed.startswith("v1."):
            for aead in self._aeads.values():
                try:
                    return _decrypt(aead, sealed[3:])
                except ValueError:
                    continue
            raise ValueError("sealed under a key that is not held")
        raise ValueError("unknown sealed format")

    def reseal_text(self, text: str, on_unreadable: Callable[[str], None]) -> str:
        """`text` with every sealed value in it sealed again under the current key (values
        sealed under it already stay as they are).

        A value no held key opens is left as it is and passed to `on_unreadable`.
        """

        current = f"v2.{self.key_id}."

        def again(match: re.Match[str]) -> str:
            value = match.group(0)
            if value.startswith(current):
                return value
            try:
                return self.seal(self.open(value))
            except ValueError:
                on_unreadable(value)
                return value

        return SEALED_VALUE.sub(again, text)


def _decrypt(aead: AESGCM, body: str) -> str:
    try:
        raw = base64.b64decode(body, validate=True)
        return aead.decrypt(raw[:12], raw[12:], _AAD).decode()
    except (InvalidTag, binascii.Error, ValueError) as exc:
        raise ValueError("the sealed value does not open under this key") from exc


def new_sealing_key() -> bytes:
    return os.urandom(32)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_hex(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    a_b = a.encode() if isinstance(a, str) else a
    b_b = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_b, b_b)


def looks_like_api_key(value: str) -> bool:
    return value.startswith(API_KEY_PREFIX) and len(value) == len(API_KEY_PREFIX) + 64

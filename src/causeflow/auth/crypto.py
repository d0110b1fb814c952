"""Secrets at rest: API keys are hashed, signing secrets sealed with AES-GCM.

`SecretBox` seals strings under the service's 256-bit key (generated on first start and kept
with the data, or `CAUSEFLOW_SECRET_KEY`). Sealed values are `v1.<base64(nonce|ciphertext)>`;
the version prefix leaves room for key rotation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

API_KEY_PREFIX = "cflo_"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the secret key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_text(cls, text: str) -> SecretBox:
        """Accepts 64 hex chars or base64 of 32 bytes; anything else is stretched with SHA-256."""
        raw: bytes | None = None
        try:
            if len(text) == 64:
                raw = bytes.fromhex(text)
        except ValueError:
            raw = None
        if raw is None:
            try:
                decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
                raw = decoded if len(decoded) == 32 else None
            except (ValueError, TypeError):
                raw = None
        if raw is None:
            raw = hashlib.sha256(text.encode()).digest()
        return cls(raw)

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, plaintext.encode(), b"causeflow")
        return "v1." + base64.b64encode(nonce + ct).decode()

    def open(self, sealed: str) -> str:
        if not sealed.startswith("v1."):
            raise ValueError("unknown sealed format")
        raw = base64.b64decode(sealed[3:])
        return self._aead.decrypt(raw[:12], raw[12:], b"causeflow").decode()


def generate_key_text() -> str:
    return secrets.token_hex(32)


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

"""The two ways a provider refuses a delivery, apart from the payload's shapes (base.py), so the
helpers every parser uses (fields.py, the SNS envelope) depend on nothing else of a provider."""

from __future__ import annotations


class InvalidPayload(Exception):
    """The body cannot be read as this provider's payload; `str(exc)` is the reason shown."""


class InvalidSignature(Exception):
    """A signature is present and wrong, or (SNS) cannot be checked at all."""

"""Exceptions raised by the CauseFlow client library.

CauseFlowError
 ├── CauseFlowAPIError          the service answered 4xx/5xx ({"error","message","details"})
 ├── CauseFlowConnectionError   no answer: refused, reset, timed out, not HTTP
 └── WebhookVerificationError   a webhook request is not a genuine, fresh CauseFlow delivery
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CauseFlowError(Exception):
    """Base of every error this library raises."""


class CauseFlowAPIError(CauseFlowError):
    """The service refused a request.

    `status` is the HTTP status, `code` the snake_case error code (`not_found`,
    `validation_error`, `rate_limit_exceeded`, ...), `message` the human sentence, `details`
    the optional structured part (e.g. field paths of a validation error). `retry_after` is
    the `Retry-After` header in seconds when the service sent one (429, 503).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after = retry_after
        super().__init__(f"{status} {code}: {message}")

    def __repr__(self) -> str:
        return (
            f"CauseFlowAPIError(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, details={self.details!r})"
        )


class CauseFlowConnectionError(CauseFlowError):
    """The request got no HTTP answer (connection refused or dropped, timeout, bad framing)."""


class WebhookVerificationError(CauseFlowError):
    """A webhook request failed verification: missing headers, bad or stale signature, or a
    body that is not an event envelope. Answer such a request with 400 and do not act on it."""

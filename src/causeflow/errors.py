"""The error hierarchy and its HTTP mapping.

Every failure a client can cause is a `CauseFlowError` carrying its status, a snake_case code,
a message and optional details; the API layer renders it as
`{"error", "message", "details"?}`. Services raise these; routers never build error bodies.

    CauseFlowError
    ├── BadRequest (400)            ├── InvalidPayload (400 invalid_payload)
    ├── Unauthorized (401)          ├── InvalidSignature (401 invalid_signature)
    ├── Forbidden (403)
    ├── NotFound (404)              ├── UnknownProvider (404 unknown_provider)
    ├── Conflict (409)              ├── InvalidTransition (409 invalid_transition)
    ├── Gone (410)                  ├── CursorExpired (410 cursor_expired)
    ├── PayloadTooLarge (413)
    ├── ValidationFailed (422 validation_error)
    ├── RateLimited (429 rate_limit_exceeded)
    └── Unavailable (503 service_unavailable)
"""

from __future__ import annotations

from typing import Any


class CauseFlowError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


class BadRequest(CauseFlowError):
    status, code = 400, "bad_request"


class InvalidPayload(BadRequest):
    code = "invalid_payload"


class Unauthorized(CauseFlowError):
    status, code = 401, "unauthorized"


class InvalidSignature(Unauthorized):
    code = "invalid_signature"


class Forbidden(CauseFlowError):
    status, code = 403, "forbidden"


class NotFound(CauseFlowError):
    status, code = 404, "not_found"


class UnknownProvider(NotFound):
    code = "unknown_provider"


class Conflict(CauseFlowError):
    status, code = 409, "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class Gone(CauseFlowError):
    status, code = 410, "gone"


class CursorExpired(Gone):
    code = "cursor_expired"


class PayloadTooLarge(CauseFlowError):
    status, code = 413, "payload_too_large"


class ValidationFailed(CauseFlowError):
    status, code = 422, "validation_error"

    @classmethod
    def at(cls, path: str, message: str) -> ValidationFailed:
        return cls(message, details={"errors": [{"path": path, "message": message}]})


class RateLimited(CauseFlowError):
    status, code = 429, "rate_limit_exceeded"


class Unavailable(CauseFlowError):
    status, code = 503, "service_unavailable"

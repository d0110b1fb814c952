"""Every 4xx/5xx in one shape: `{"error", "message", "details"?}`, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from causeflow.api.responses import JSONResponse
from causeflow.errors import CauseFlowError, Unavailable, ValidationFailed
from causeflow.logtext import clean

log = logging.getLogger("causeflow.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def validation_details(errors: list[dict[str, Any]]) -> dict[str, Any]:
    out = []
    for err in errors:
        if err.get("type") == "json_invalid":
            # The body could not be read (`jsonutil.loads_body` says why).
            reason = (err.get("ctx") or {}).get("error")
            message = f"the body is not acceptable JSON: {reason}" if reason else "not JSON"
            out.append({"path": "body", "message": message})
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        if err.get("loc", ("",))[0] in ("query", "path", "header"):
            loc = [str(p) for p in err["loc"]]
        out.append({"path": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
    return {"errors": out}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        details = validation_details(errors)
        message = "the request is not valid"
        if errors and errors[0].get("type") == "json_invalid":
            message = details["errors"][0]["message"]
        return error_response(422, "validation_error", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = "no such resource"
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    from sqlalchemy.exc import DBAPIError

    # The service's own errors, the database's and anything unexpected: `failure_of` decides.
    @app.exception_handler(CauseFlowError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    @app.exception_handler(TimeoutError)
    @app.exception_handler(Exception)
    async def _failure(_request: Request, exc: Exception) -> JSONResponse:
        err = failure_of(exc)
        return error_response(err.status, err.code, err.message, err.details, err.headers)


def storage_failure(exc: Exception) -> CauseFlowError:
    """The error a client sees for a failure of the database (or of the network to it)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", "") or "")
    if sqlstate.startswith("22") or type(exc).__name__ == "DataError":
        # A value the database cannot store (a NUL in text, an integer beyond 64 bits): the
        # client's mistake; the transaction was rolled back, nothing was written.
        return ValidationFailed("a value in the request cannot be stored")
    if (
        isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError)
        or (
            isinstance(exc, DBAPIError)
            # no SQLSTATE (the connection is gone), connection exceptions, shutdown, resources
            and (exc.connection_invalidated or not sqlstate or sqlstate[:2] in ("08", "57", "53"))
        )
    ):
        log.warning("database unavailable: %s", clean(exc, 500))
        return Unavailable("the database is unavailable", headers={"Retry-After": "2"})
    log.exception("database error", exc_info=exc)
    return CauseFlowError("an internal error occurred")


def failure_of(exc: Exception) -> CauseFlowError:
    """The error a client sees for any exception a handler raised."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, CauseFlowError):
        return exc
    if isinstance(exc, DBAPIError | OSError | TimeoutError):
        return storage_failure(exc)
    log.error("unhandled error", exc_info=exc)
    return CauseFlowError("an internal error occurred")

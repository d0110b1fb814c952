"""Schemathesis hooks: every 4xx/5xx must be in the error shape of docs/reference.md §8.7."""

from __future__ import annotations

import json

import schemathesis


@schemathesis.check
def error_shape(ctx, response, case):  # noqa: ARG001
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{response.status_code} body is not JSON") from exc
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("error"), str)
        or not isinstance(body.get("message"), str)
    ):
        raise AssertionError(f"{response.status_code} body is not the error shape: {body!r}")
    extra = set(body) - {"error", "message", "details"}
    if extra:
        raise AssertionError(f"unexpected keys in the error body: {sorted(extra)}")
    return None

"""`JsonRoute`: the route class of every API router, so that JSON bodies are read by
`jsonutil.loads_body` (the same rules as the inbound endpoint) instead of the framework's
default parser, which lets `NaN`, integers of any size and any nesting through to the handler.

A body it refuses is the client's mistake: FastAPI answers 422 `validation_error` with the
reason (`api/errors.validation_details`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from causeflow.jsonutil import loads_body


class JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_body(await self.body())
        return self._json


class JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_json(request: Request) -> Response:
            return await handler(JsonRequest(request.scope, request.receive))

        return strict_json

"""Route dependencies: the app context, the caller, and permission checks as Annotated aliases."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from causeflow.api.idempotency import admit
from causeflow.auth.principal import Action, Principal, allows
from causeflow.context import AppContext
from causeflow.errors import Forbidden, Unauthorized

T = TypeVar("T")


async def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[AppContext, Depends(get_ctx)]


async def get_principal(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:
        raise Unauthorized("authentication required: send a Bearer token or an API key")
    return principal  # type: ignore[no-any-return]


def admits(principal: Principal | None, *actions: Action) -> bool:
    """Whether a route requiring any of `actions` lets `principal` in (a stream ticket never)."""
    return (
        principal is not None
        and principal.kind != "ticket"
        and any(allows(principal, a) for a in actions)
    )


def require(*actions: Action) -> object:
    """A dependency that admits callers allowed any of `actions`.

    Only once the caller is admitted is the request's `Idempotency-Key` looked at (`admit`):
    a stored answer is replayed only to a caller the route would have let make the request.
    """

    async def check(
        request: Request, principal: Annotated[Principal, Depends(get_principal)]
    ) -> Principal:
        if principal.kind == "ticket":
            raise Forbidden("stream tickets are valid only for the stream")
        if not any(allows(principal, a) for a in actions):
            raise Forbidden(f"this credential may not {actions[0].value} here")
        await admit(request.scope)
        return principal

    return Depends(check)


Reader = Annotated[Principal, require(Action.READ)]
Admin = Annotated[Principal, require(Action.WRITE)]
Operator = Annotated[Principal, require(Action.OPERATE)]
Producer = Annotated[Principal, require(Action.OPERATE, Action.PRODUCE)]
Publisher = Annotated[Principal, require(Action.PUBLISH)]
PlatformAdmin = Annotated[Principal, require(Action.PLATFORM)]
AdminOrProducer = Annotated[Principal, require(Action.WRITE, Action.PRODUCE)]


def async_dependency(cls: type[T]) -> Callable[..., Awaitable[T]]:
    """`cls` as an async dependency. FastAPI runs plain classes and `def` dependencies in a
    thread pool (a thread hop per request each); building these small objects needs none."""
    hints = typing.get_type_hints(cls.__init__, include_extras=True)
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
    ]

    async def build(**kwargs: Any) -> T:
        return cls(**kwargs)

    build.__signature__ = inspect.Signature(params, return_annotation=cls)  # type: ignore[attr-defined]
    build.__name__ = f"build_{cls.__name__}"
    return build


def tenant_of(principal: Principal) -> str:
    assert principal.tenant_id is not None
    return principal.tenant_id

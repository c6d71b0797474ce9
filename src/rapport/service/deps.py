"""Request dependencies: authentication of backends (API key, in one project with one scope)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from rapport.service.auth import Caller, Scope, allows
from rapport.service.errors import ApiError
from rapport.service.state import State, state


def bearer(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def caller(needed: Scope) -> Callable[[Request, State], Awaitable[Caller]]:
    """A dependency: the calling key; 401 without a valid one, 403 when its scope is short."""

    async def dependency(request: Request, st: Annotated[State, Depends(state)]) -> Caller:
        key = bearer(request.headers.get("authorization"))
        if key is None:
            raise ApiError(401, "unauthorized", "send an API key as 'Authorization: Bearer rk_...'")
        who = await st.keys.check(key)
        if who is None:
            raise ApiError(401, "unauthorized", "the API key is not valid")
        if not allows(who.scope, needed):
            raise ApiError(
                403, "forbidden", f"this needs an API key with the {needed!r} scope ({who.scope!r})"
            )
        return who

    return dependency


Reader = Annotated[Caller, Depends(caller("read"))]
Backend = Annotated[Caller, Depends(caller("backend"))]
Admin = Annotated[Caller, Depends(caller("admin"))]
App = Annotated[State, Depends(state)]

"""Request dependencies: authentication of backends (API key) and dashboards (session token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from rapport.service.auth import check_api_key
from rapport.service.errors import ApiError
from rapport.service.state import State, state


def bearer(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def api_key(request: Request, st: Annotated[State, Depends(state)]) -> str:
    """The calling backend's key id; 401 without a valid API key."""
    key = bearer(request.headers.get("authorization"))
    if key is None:
        raise ApiError(401, "unauthorized", "send an API key as 'Authorization: Bearer rk_...'")
    key_id = await check_api_key(st.db, key)
    if key_id is None:
        raise ApiError(401, "unauthorized", "the API key is not valid")
    return key_id


Backend = Annotated[str, Depends(api_key)]
App = Annotated[State, Depends(state)]

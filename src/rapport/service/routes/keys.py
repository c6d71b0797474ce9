"""API keys of the caller's project, for its admins: create (shown once), list, revoke. A key
can only be made with a scope up to the caller's own, and only in the caller's project."""

from __future__ import annotations

from fastapi import APIRouter

from rapport.service.api import KeyIn, KeyOut
from rapport.service.auth import create_api_key, list_api_keys, revoke_api_key
from rapport.service.deps import Admin, App
from rapport.service.errors import not_found
from rapport.store.tables import ApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def _out(row: ApiKey, key: str | None = None) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        project=row.project,
        scope=row.scope,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        key=key,
    )


@router.post("", status_code=201, response_model=KeyOut)
async def create_key(body: KeyIn, st: App, who: Admin) -> KeyOut:
    """A new key of the caller's project; the key itself is in this answer only."""
    row, key = await create_api_key(st.db, body.name, who.project, body.scope)
    return _out(row, key)


@router.get("", response_model=list[KeyOut])
async def list_keys(st: App, who: Admin) -> list[KeyOut]:
    return [_out(k) for k in await list_api_keys(st.db, who.project)]


@router.delete("/{key_id}", response_model=KeyOut)
async def revoke_key(key_id: str, st: App, who: Admin) -> KeyOut:
    """Revoked at once: the next request with it is refused, and its WebSocket connections
    (and those of the tokens it minted) close with 4401 within `service.key_check_s`."""
    row = await revoke_api_key(st.db, key_id, who.project)
    if row is None:
        raise not_found("API key", key_id)
    st.keys.forget(row.id)
    st.hub.revoke_keys({row.id})
    return _out(row)

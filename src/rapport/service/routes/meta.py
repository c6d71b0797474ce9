"""The consent-signing public keys, the purpose catalogue, and subject erasure (health and
metrics: routes/ops.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from rapport import NOTICE
from rapport.consent.policy import catalogue
from rapport.service.api import ErasureOut
from rapport.service.deps import App, Backend
from rapport.service.retention import erase_subject

router = APIRouter()


@router.get("/.well-known/rapport-keys.json", tags=["consents"])
async def public_keys(st: App) -> dict[str, Any]:
    """Ed25519 keys (JWK) that verify consent records; newest first, rotated keys kept."""
    return st.consents.keys.jwks()


@router.get("/v1/purposes", tags=["consents"])
async def purposes() -> dict[str, Any]:
    return {"purposes": catalogue(), "notice": NOTICE}


@router.delete("/v1/subjects/{user_id}", response_model=ErasureOut, tags=["subjects"])
async def erase(user_id: str, st: App, who: Backend) -> ErasureOut:
    """Erase everything derived from one person in the caller's project: their consents'
    content (the log keeps only the fact of erasure), and the events and pending deliveries of
    their sessions. User ids are the project's own: another project's same id is untouched."""
    return await erase_subject(
        st.db, st.consents, st.runs, who.project, user_id, st.fleet
    )

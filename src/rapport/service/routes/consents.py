"""Consents: record (signed, chained), read, list, revoke, and the audit export of the log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rapport.consent.records import LogEntry
from rapport.consent.store import iso
from rapport.service.api import MAX_SEQ, ConsentIn, ConsentOut, Signature
from rapport.service.deps import App, Backend, Reader
from rapport.service.errors import ApiError, not_found
from rapport.service.policy_check import require_lawful
from rapport.service.runs import grant_of
from rapport.store.notify import CONSENTS, notify
from rapport.store.tables import Consent, Session

router = APIRouter(prefix="/v1/consents", tags=["consents"])


def _signature(e: LogEntry) -> Signature:
    return Signature(
        seq=e.seq,
        kind=e.kind,
        content_hash=e.content_hash,
        prev_hash=e.prev_hash,
        entry_hash=e.entry_hash,
        kid=e.kid,
        signature=e.signature,
    )


def _consent_out(c: Consent, entry: LogEntry, revocation: LogEntry | None) -> ConsentOut:
    assert entry.content is not None
    status = (
        "revoked"
        if c.revoked_at is not None
        else ("expired" if c.expires_at <= datetime.now(UTC) else "active")
    )
    return ConsentOut(
        id=c.id,
        status=status,
        record=entry.content,
        signed=_signature(entry),
        revocation=_signature(revocation) if revocation is not None else None,
    )


async def _outs(st: App, cs: list[Consent]) -> list[ConsentOut]:
    """The consents with their log entries, read in one query per project (never through the
    log's writer)."""
    out: list[ConsentOut] = []
    by_project: dict[str, dict[int, LogEntry]] = {}
    for project in {c.project for c in cs}:
        mine = [c for c in cs if c.project == project]
        seqs = {c.grant_seq for c in mine} | {
            c.revoke_seq for c in mine if c.revoke_seq is not None
        }
        by_project[project] = await st.consents.by_seq(project, seqs)
    for c in cs:
        entries = by_project[c.project]
        revocation = entries[c.revoke_seq] if c.revoke_seq is not None else None
        out.append(_consent_out(c, entries[c.grant_seq], revocation))
    return out


async def _out(st: App, c: Consent) -> ConsentOut:
    return (await _outs(st, [c]))[0]


@router.post("", status_code=201, response_model=ConsentOut)
async def record_consent(body: ConsentIn, st: App, who: Backend) -> ConsentOut:
    async with st.db.session() as s:
        session = await s.get(Session, body.session_id)
    if session is None or session.project != who.project:
        raise not_found("session", body.session_id)
    if session.status in ("ended", "failed", "interrupted"):
        raise ApiError(409, "session_ended", f"session {session.id} has {session.status}")
    if body.purpose != session.purpose:
        raise ApiError(
            422,
            "purpose_mismatch",
            f"the session's purpose is {session.purpose!r}; a consent to {body.purpose!r} "
            "does not cover it",
        )
    if body.expires_at <= datetime.now(UTC):
        raise ApiError(422, "invalid_request", "expires_at: already in the past")
    bias_audit = session.options.get("bias_audit")
    jurisdiction = require_lawful(
        body.purpose,
        body.jurisdiction,
        session.setting,
        datetime.fromisoformat(bias_audit).date() if bias_audit else None,
    )
    consent_id = f"con_{uuid.uuid4().hex[:24]}"
    record: dict[str, Any] = {
        "consent_id": consent_id,
        "user_id": body.user_id,
        "session_id": body.session_id,
        "purpose": body.purpose,
        "purpose_text": body.purpose_text,
        "notice_version": body.notice_version,
        "jurisdiction": jurisdiction,
        "setting": session.setting,
        "modalities": list(body.modalities),
        "granted_at": iso(body.granted_at),
        "expires_at": iso(body.expires_at),
        "recorded_at": iso(datetime.now(UTC)),
    }
    row = Consent(
        id=consent_id,
        project=who.project,
        user_id=body.user_id,
        session_id=body.session_id,
        purpose=body.purpose,
        jurisdiction=jurisdiction,
        modalities=list(body.modalities),
        granted_at=body.granted_at,
        expires_at=body.expires_at,
        revoked_at=None,
        revoke_seq=None,
    )

    async def derive(s: AsyncSession, entry: LogEntry) -> None:
        row.grant_seq = entry.seq
        s.add(row)
        await notify(s, CONSENTS, body.session_id)  # to the worker holding it, at commit

    entry = await st.consents.append(who.project, "grant", record, derive)
    st.runs.grant(body.session_id, grant_of(row))
    return _consent_out(row, entry, None)


@router.get("/log")
async def export_log(
    st: App,
    who: Reader,
    after: int = Query(-1, ge=-1, lt=MAX_SEQ, description="Entries with seq greater than this."),
    limit: int = Query(1000, ge=1, le=10_000),
) -> dict[str, Any]:
    """The project's signed log (one chain per project) for audit, with the public keys that
    verify it."""
    entries = await st.consents.entries(who.project, after, limit)
    return {"entries": [e.to_dict() for e in entries], "keys": st.consents.keys.jwks()["keys"]}


@router.get("/{consent_id}", response_model=ConsentOut)
async def get_consent(consent_id: str, st: App, who: Reader) -> ConsentOut:
    found = await st.consents.consent(who.project, consent_id)  # one query
    if found is None:
        raise not_found("consent", consent_id)
    return _consent_out(*found)


@router.get("", response_model=list[ConsentOut])
async def list_consents(
    st: App,
    who: Reader,
    session_id: str | None = None,
    user_id: str | None = None,
    after: int = Query(
        -1,
        ge=-1,
        lt=MAX_SEQ,
        description="Consents granted after this `signed.seq` (a page's last).",
    ),
    limit: int = Query(100, ge=1, le=1000),
) -> list[ConsentOut]:
    """Consents in the order they were granted, optionally of one session and/or one person, a
    page of `limit` at a time: pass the last one's `signed.seq` as `after` for the next page."""
    q = (
        select(Consent)
        .where(Consent.project == who.project, Consent.grant_seq > after)
        .order_by(Consent.grant_seq)
        .limit(limit)
    )
    if session_id is not None:
        q = q.where(Consent.session_id == session_id)
    if user_id is not None:
        q = q.where(Consent.user_id == user_id)
    async with st.db.session() as s:
        rows = list(await s.scalars(q))
    return await _outs(st, rows)


@router.post("/{consent_id}/revoke", response_model=ConsentOut)
async def revoke_consent(consent_id: str, st: App, who: Backend) -> ConsentOut:
    """From this moment nothing more of the person is processed in the session; their
    in-memory state is purged and a consent.revoked event is emitted. Idempotent."""
    async with st.db.session() as s:
        c = await s.get(Consent, consent_id)
    if c is None or c.project != who.project:
        raise not_found("consent", consent_id)
    if c.revoked_at is not None:
        return await _out(st, c)
    at = datetime.now(UTC)
    # The gate first: processing stops before the log write, not after it.
    await st.runs.revoke(c.session_id, c.user_id, c.id, at)
    record = {
        "consent_id": c.id,
        "user_id": c.user_id,
        "session_id": c.session_id,
        "revoked_at": iso(at),
    }

    async def derive(s: AsyncSession, entry: LogEntry) -> None:
        row = await s.get(Consent, consent_id)
        assert row is not None
        row.revoked_at, row.revoke_seq = at, entry.seq
        await notify(s, CONSENTS, row.session_id)

    await st.consents.append(who.project, "revoke", record, derive)
    async with st.db.session() as s:
        c2 = await s.get(Consent, consent_id)
    assert c2 is not None
    return await _out(st, c2)

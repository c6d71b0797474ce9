"""Sessions: create (purpose checked), start a recording, read (with gate counters), end (the
summary is emitted), and issue dashboard tokens scoped to one session."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from rapport.analyze import Plan, plan
from rapport.config import Settings
from rapport.consent.policy import PURPOSES
from rapport.service.api import SessionIn, SessionOut, TokenOut
from rapport.service.auth import Caller
from rapport.service.deps import App, Backend, Reader
from rapport.service.errors import ApiError, not_found
from rapport.service.policy_check import require_lawful
from rapport.service.runs import grant_of
from rapport.store.tables import Consent, Session
from rapport.store.tables import Event as EventRow

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
SessionStatus = Literal["created", "running", "ended", "failed", "interrupted"]


def _under_roots(settings: Settings, field: str, value: str) -> Path:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ApiError(422, "invalid_request", f"{field}: {value!r} contains control characters")
    path = Path(value).expanduser().resolve()
    roots = [r.expanduser().resolve() for r in settings.service.media_roots]
    if not any(path.is_relative_to(r) for r in roots):
        raise ApiError(
            422,
            "invalid_request",
            f"{field}: {value!r} is not under any folder of service.media_roots",
        )
    return path


def _out(st: App, row: Session) -> SessionOut:
    run = st.runs.get(row.id)
    counts = run.counts() if run is not None else row.counts
    return SessionOut(
        id=row.id,
        source={row.source_kind: row.source},
        purpose=row.purpose,
        jurisdiction=row.jurisdiction,
        setting=row.setting,
        reporting=row.reporting,
        status=row.status,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        error=row.error,
        counts=counts,
    )


async def _plan(st: App, row: Session) -> tuple[Path, Plan]:
    opts = row.options
    recording = _under_roots(st.settings, "recording", row.source)
    transcript = (
        _under_roots(st.settings, "transcript", opts["transcript"])
        if opts.get("transcript")
        else None
    )
    p = await asyncio.to_thread(plan, recording, transcript, opts.get("participant") or "", True)
    return recording, p


async def _row(st: App, who: Caller, session_id: str) -> Session:
    """The caller's project's session; another project's is as absent as a missing one."""
    async with st.db.session() as s:
        row = await s.get(Session, session_id)
    if row is None or row.project != who.project:
        raise not_found("session", session_id)
    return row


@router.post("", status_code=201, response_model=SessionOut)
async def create_session(body: SessionIn, st: App, who: Backend) -> SessionOut:
    jurisdiction = require_lawful(body.purpose, body.jurisdiction, body.setting, body.bias_audit)
    if body.reporting == "participant" and not PURPOSES[body.purpose].per_participant:
        raise ApiError(
            422,
            "reporting_refused",
            f"per-participant reporting is not available for {body.purpose!r}; "
            "use reporting 'room' (aggregates only)",
        )
    row = Session(
        id=f"ses_{uuid.uuid4().hex[:24]}",
        project=who.project,
        source_kind="recording" if body.recording else "room",
        source=body.recording or body.room or "",
        purpose=body.purpose,
        jurisdiction=jurisdiction,
        setting=body.setting,
        reporting=body.reporting,
        options={
            "transcript": body.transcript,
            "participant": body.participant,
            "speed": body.speed,
            "bias_audit": body.bias_audit.isoformat() if body.bias_audit else None,
        },
        status="created",
        created_at=datetime.now(UTC),
        counts={},
        # Workers: dispatched below; stored as such first, so reconciliation waits for it.
        dispatched_at=datetime.now(UTC) if st.fleet is not None and body.room else None,
    )
    if body.recording:
        if body.transcript is None and body.participant is None:
            raise ApiError(
                422,
                "invalid_request",
                "participant: required for a recording without a transcript "
                "(whose consent covers it)",
            )
        await _plan(st, row)  # bad media or transcript fails here, before anything is stored
    else:
        await _room_free(st, who, row.source)
    async with st.db.transaction() as s:
        s.add(row)
    st.runs.open(row.id, [])
    if st.fleet is not None and row.source_kind == "room":
        await st.fleet.dispatch(row.id, row.source)  # not reached: reconciliation tries again
    return _out(st, row)


async def _room_free(st: App, who: Caller, room: str) -> None:
    """A LiveKit room is one project's: the bot must never analyse a room for a project whose
    session did not start it."""
    async with st.db.session() as s:
        other = await s.scalar(
            select(Session.id).where(
                Session.source_kind == "room",
                Session.source == room,
                Session.project != who.project,
                Session.status.in_(("created", "running")),
            )
        )
    if other is not None:
        raise ApiError(409, "room_in_use", f"room {room!r} has a session of another project")


@router.get("", response_model=list[SessionOut])
async def list_sessions(
    st: App,
    who: Reader,
    status: SessionStatus | None = None,
    after: str | None = Query(
        None,
        min_length=1,
        max_length=40,
        description="The id of the previous page's last session: the next page starts after it.",
    ),
    limit: int = Query(100, ge=1, le=1000),
) -> list[SessionOut]:
    """The project's sessions, newest first (by creation), optionally of one status, a page of
    `limit` at a time: pass the last one's `id` as `after` for the next page."""
    q = select(Session).where(Session.project == who.project)
    if after is not None:
        last = await _row(st, who, after)
        q = q.where(
            (Session.created_at < last.created_at)
            | ((Session.created_at == last.created_at) & (Session.id < last.id))
        )
    if status is not None:
        q = q.where(Session.status == status)
    q = q.order_by(Session.created_at.desc(), Session.id.desc()).limit(limit)
    async with st.db.session() as s:
        rows = list(await s.scalars(q))
    return [_out(st, row) for row in rows]


@router.get("/{session_id}", response_model=SessionOut)
async def get_session(session_id: str, st: App, who: Reader) -> SessionOut:
    return _out(st, await _row(st, who, session_id))


@router.post("/{session_id}/start", response_model=SessionOut)
async def start_session(session_id: str, st: App, who: Backend) -> SessionOut:
    """Start analysing a recording (record the consents first: nothing else is processed)."""
    row = await _row(st, who, session_id)
    if row.source_kind != "recording":
        raise ApiError(409, "not_a_recording", "a room session starts when its room does")
    if row.status != "created":
        raise ApiError(409, "already_started", f"session {session_id} is {row.status}")
    recording, p = await _plan(st, row)
    now = datetime.now(UTC)
    async with st.db.session() as s:
        consents = list(
            await s.scalars(
                select(Consent).where(
                    Consent.session_id == session_id, Consent.revoked_at.is_(None)
                )
            )
        )
    run = st.runs.open(session_id, [grant_of(c) for c in consents])
    async with st.db.transaction() as s:
        live = await s.get(Session, session_id)
        assert live is not None
        live.status, live.started_at = "running", now
    st.runs.start_recording(
        run,
        recording,
        p,
        reporting="participant" if row.reporting == "participant" else "room",
        speed=float(row.options.get("speed") or 0.0),
    )
    return _out(st, await _row(st, who, session_id))


@router.delete("/{session_id}", response_model=SessionOut)
async def end_session(session_id: str, st: App, who: Backend) -> SessionOut:
    """End the session; a running one emits its summary first."""
    row = await _row(st, who, session_id)
    await st.runs.stop(session_id)  # a running session has ended (and its status stored) after it
    if st.fleet is not None and row.status == "running":
        await st.fleet.end(session_id)  # likewise, on the worker holding it
    if row.status == "created":
        async with st.db.transaction() as s:
            live = await s.get(Session, session_id)
            assert live is not None
            live.status, live.ended_at = "ended", datetime.now(UTC)
    return _out(st, await _row(st, who, session_id))


@router.post("/{session_id}/tokens", status_code=201, response_model=TokenOut)
async def issue_token(session_id: str, st: App, who: Backend) -> TokenOut:
    """A short-lived token for a dashboard to read this session's events (and nothing else).
    It stops working when it expires or when the API key that asked for it is revoked."""
    await _row(st, who, session_id)
    token, expires = st.tokens.issue(who, session_id)
    return TokenOut(
        token=token, expires_at=datetime.fromtimestamp(expires, UTC), session_id=session_id
    )


@router.get(
    "/{session_id}/report",
    response_class=HTMLResponse,
    responses={200: {"description": "One self-contained HTML file (no network needed)."}},
)
async def session_report(session_id: str, st: App, who: Reader) -> HTMLResponse:
    """The report of a finished session: its timelines, moments and summary, as one HTML file
    that opens offline (the dashboard's own rendering, with the events inlined)."""
    from rapport.report import render_html

    row = await _row(st, who, session_id)
    if row.status in ("created", "running"):
        raise ApiError(409, "session_not_ended", f"session {session_id} is {row.status}")
    async with st.db.session() as s:
        bodies = list(
            await s.scalars(
                select(EventRow.body).where(EventRow.session_id == row.id).order_by(EventRow.seq)
            )
        )
    events = [json.loads(b) for b in bodies]
    html = await asyncio.to_thread(render_html, events, title=f"rapport report: {row.id}")
    return HTMLResponse(html)

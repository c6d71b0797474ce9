"""`/v1/events?session=ID[&after=SEQ]`: a session's events, live, over a WebSocket.

Authenticated at the handshake (a dashboard token for this session, or an API key; a browser's
Origin must be this server's own (the dashboard at /dashboard) or in `service.allowed_origins`),
else refused with HTTP 403 before any event. On connect the kept events after
`after` are replayed from the store, then live ones follow, with no gap and no duplicate (seq
decides). If events after `after` were already purged, a `stream.reset` message says from where
the replay starts. `heartbeat` messages come when idle. The connection closes with 1000 after the
session's summary, with 4408 when the consumer falls `websocket.queue_size` events behind, and
with 4401 within `service.key_check_s` of the revocation of the API key it was opened with (or
that minted its token).

Only the session's own project may read it: an API key of the project (any scope), or a token
minted by one for this session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from sqlalchemy import func, select

from rapport.events.websocket import CLOSE_KEY_REVOKED, CLOSE_TOO_SLOW, Outgoing, Subscription
from rapport.service.api import MAX_SEQ
from rapport.service.auth import key_is_live
from rapport.service.deps import bearer
from rapport.service.state import State, ws_state
from rapport.store.tables import Event as EventRow
from rapport.store.tables import Session

router = APIRouter(tags=["events"])

REPLAY_PAGE = 500
ENDED = ("ended", "failed", "interrupted")
CLOSE_WAIT_S = 2.0


def _same_origin(origin: str, ws: WebSocket) -> bool:
    """The page was served by this server (its Origin names the host the request went to)."""
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == ws.headers.get("host")


async def _authorised(ws: WebSocket, st: State, row: Session, token: str | None) -> str | None:
    """The id of the API key behind the credential, when it may read this session."""
    origin = ws.headers.get("origin")
    if origin is not None and not (
        origin in st.settings.service.allowed_origins or _same_origin(origin, ws)
    ):
        return None
    # A query string ends up in logs: dashboard tokens only there, never keys.
    credential = token if token is not None else bearer(ws.headers.get("authorization"))
    if credential is None:
        return None
    grant = st.tokens.check(credential)
    if grant is not None:
        ok = grant.session_id == row.id and grant.project == row.project
        return grant.key_id if ok and await key_is_live(st.db, grant.key_id) else None
    if token is not None:
        return None
    who = await st.keys.check(credential)
    return who.key_id if who is not None and who.project == row.project else None


@router.websocket("/v1/events")
async def events(
    ws: WebSocket,
    session: str = Query(min_length=1, max_length=40),
    after: int = Query(
        -1, ge=-1, lt=MAX_SEQ, description="Last seq received; -1 replays all that is kept."
    ),
    token: str | None = Query(None, description="Dashboard token (API keys go in a header)."),
) -> None:
    st = ws_state(ws)
    async with st.db.session() as s:
        row = await s.get(Session, session)
    key_id = None if row is None else await _authorised(ws, st, row, token)
    if row is None or key_id is None:
        await ws.close(code=1008)  # before accept: the handshake fails with HTTP 403
        return
    await ws.accept()
    sub = st.hub.subscribe(session, key_id)
    try:
        await _stream(ws, st, sub, row, after)
    except WebSocketDisconnect:
        pass
    finally:
        st.hub.unsubscribe(sub)


async def _stream(ws: WebSocket, st: State, sub: Subscription, row: Session, after: int) -> None:
    timeout = st.settings.websocket.send_timeout_s
    last = after

    async def send(text: str) -> bool:
        try:
            await asyncio.wait_for(ws.send_text(text), timeout)
            return True
        except TimeoutError:
            await _close(ws, CLOSE_TOO_SLOW, "consumer too slow; resume with after=last seq")
            return False

    async with st.db.session() as s:
        oldest = await s.scalar(select(func.min(EventRow.seq)).where(EventRow.session_id == row.id))
    if oldest is not None and after + 1 < oldest:
        reset = {"type": "stream.reset", "session_id": row.id, "from_seq": oldest}
        if not await send(json.dumps(reset)):
            return
        last = oldest - 1
    final_seen = False
    while True:  # replay, page by page
        async with st.db.session() as s:
            page = list(
                await s.execute(
                    select(EventRow.seq, EventRow.body, EventRow.type)
                    .where(EventRow.session_id == row.id, EventRow.seq > last)
                    .order_by(EventRow.seq)
                    .limit(REPLAY_PAGE)
                )
            )
        for seq, body, type_ in page:
            if sub.revoked.is_set():
                await _close(ws, CLOSE_KEY_REVOKED, "API key revoked")
                return
            if not await send(body):
                return
            last = seq
            final_seen = final_seen or type_ == "session.summary"
        if len(page) < REPLAY_PAGE:
            break
    if final_seen or row.status in ENDED:
        # (An ended session whose summary was erased or purged has nothing more to send.)
        await _close(ws, 1000, "session ended")
        return
    receiver = asyncio.create_task(_drain_client(ws))
    try:
        while True:
            item = await _next(sub, receiver, st.settings.websocket.heartbeat_s)
            if item == "closed":
                return
            if item == "cut":
                await _close(ws, CLOSE_TOO_SLOW, "consumer too slow; resume with after=last seq")
                return
            if item == "revoked":
                await _close(ws, CLOSE_KEY_REVOKED, "API key revoked")
                return
            if item is None:
                beat = {
                    "type": "heartbeat",
                    "session_id": row.id,
                    "last_seq": last,
                    "at": datetime.now(UTC).isoformat(),
                }
                if not await send(json.dumps(beat)):
                    return
                continue
            assert isinstance(item, Outgoing)
            if item.seq <= last:
                continue  # already replayed
            if not await send(item.body):
                return
            last = item.seq
            if item.final:
                await _close(ws, 1000, "session ended")
                return
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await receiver


async def _next(
    sub: Subscription, receiver: asyncio.Task[None], heartbeat_s: float
) -> Outgoing | str | None:
    """The next live event; "cut" when the queue overflowed; "revoked" when the key was;
    "closed" when the client left; None after `heartbeat_s` of silence."""
    if sub.revoked.is_set():
        return "revoked"
    if sub.cut.is_set():
        return "cut"
    if not sub.queue.empty():
        return sub.queue.get_nowait()
    getter = asyncio.create_task(sub.queue.get())
    cut = asyncio.create_task(sub.cut.wait())
    revoked = asyncio.create_task(sub.revoked.wait())
    try:
        await asyncio.wait(
            {getter, cut, revoked, receiver},
            timeout=heartbeat_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        cut.cancel()
        revoked.cancel()
        if not getter.done():
            getter.cancel()
    # An item already taken off the queue is never dropped, whatever else happened.
    if getter.done() and not getter.cancelled():
        return getter.result()
    if sub.revoked.is_set():
        return "revoked"
    if sub.cut.is_set():
        return "cut"
    if receiver.done():
        return "closed"
    return None


async def _drain_client(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends, so its leaving is noticed at once."""
    with contextlib.suppress(WebSocketDisconnect):
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    # The peer may be gone, or (cut off for being slow) not reading: never wait on it long.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=code, reason=reason), CLOSE_WAIT_S)

"""The API's side of `rapport worker`s (`livekit.agent_name` set, PostgreSQL shared): the API runs
no bot; LiveKit's agent dispatch hands each room session to a worker.

- Dispatch: a room session is dispatched when created (its id in the dispatch's metadata).
  LiveKit never retries a dispatch no worker took, so `reconcile` dispatches again every session
  that needs a worker: never taken within `livekit.redispatch_s`, or running with no live lease
  (its worker was lost, or drained and handed it over). A running session whose room has gone
  while no worker held it is ended as interrupted.
- Events: workers store them (with the webhook outbox) and send a notice; the API reads what its
  WebSocket connections wait for and wakes its webhook delivery.
- Erasure: the worker holding the session is told, and the API waits for its answer (the person
  purged) before deleting what was stored, so nothing about them is written after.
- Ending a session through the API: the worker holding it is told to end it (summary and all).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from livekit import api
from sqlalchemy import or_, select, update

from rapport.config import Settings
from rapport.events.webhooks import Outbox
from rapport.events.websocket import EventHub, Outgoing
from rapport.service.rooms import LIVEKIT_UNREACHABLE
from rapport.store import notify
from rapport.store.db import Database
from rapport.store.tables import Event as EventRow
from rapport.store.tables import Session
from rapport.worker.dispatch import dispatch_room

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 5.0
"""An erasure or an end waits this long for the worker holding the session."""
END_TIMEOUT_S = 30.0


class Fleet:
    def __init__(self, settings: Settings, db: Database, hub: EventHub, outbox: Outbox) -> None:
        assert settings.livekit.agent_name
        self._settings = settings
        self._lk = settings.livekit
        self._agent_name = settings.livekit.agent_name
        self._db = db
        self._hub = hub
        self._outbox = outbox
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._published: dict[str, int] = {}
        """Per session with WebSocket connections here: the last seq handed to them."""

    # -- dispatch ---------------------------------------------------------------------------------

    async def dispatch(self, session_id: str, room: str) -> bool:
        """Ask for a worker for the session's room; False when LiveKit could not be reached
        (`reconcile` tries again after `livekit.redispatch_s`). The time is stored first, so a
        reconciliation running meanwhile does not dispatch the room a second time."""
        async with self._db.transaction() as s:
            await s.execute(
                update(Session)
                .where(Session.id == session_id)
                .values(dispatched_at=datetime.now(UTC))
            )
        try:
            await dispatch_room(self._lk, room, agent_name=self._agent_name, metadata=session_id)
        except LIVEKIT_UNREACHABLE as e:
            log.warning("dispatch failed: %s", e, extra={"session_id": session_id})
            return False
        return True

    async def reconcile(self) -> list[str]:
        """Dispatch again every room session that needs a worker; returns their ids."""
        now = datetime.now(UTC)
        stale = now - timedelta(seconds=self._lk.redispatch_s)
        undispatched = or_(Session.dispatched_at.is_(None), Session.dispatched_at < stale)
        async with self._db.session() as s:
            waiting = list(
                await s.execute(
                    select(Session.id, Session.source, Session.status).where(
                        Session.source_kind == "room",
                        or_(
                            (Session.status == "created") & undispatched,
                            (Session.status == "running")
                            & or_(Session.lease_until.is_(None), Session.lease_until < now)
                            & undispatched,
                        ),
                    )
                )
            )
        if not waiting:
            return []
        orphans = [sid for sid, _, status in waiting if status == "running"]
        gone: set[str] = set()
        if orphans:
            rooms = {room for _, room, status in waiting if status == "running"}
            async with api.LiveKitAPI(self._lk.url, self._lk.api_key, self._lk.api_secret) as lk:
                listed = await lk.room.list_rooms(api.ListRoomsRequest(names=sorted(rooms)))
            alive = {r.name for r in listed.rooms}
            gone = {
                sid for sid, room, status in waiting if status == "running" and room not in alive
            }
        if gone:
            async with self._db.transaction() as s:
                await s.execute(
                    update(Session)
                    .where(Session.id.in_(gone), Session.status == "running")
                    .where(or_(Session.lease_until.is_(None), Session.lease_until < now))
                    .values(
                        status="interrupted",
                        error="the room ended while no worker held the session",
                        ended_at=now,
                        worker=None,
                        lease_until=None,
                    )
                )
        sent = []
        for sid, room, _ in waiting:
            if sid not in gone and await self.dispatch(sid, room):
                sent.append(sid)
        return sent

    async def reconcile_forever(self) -> None:
        """Under the service's supervisor, every third of a lease: a lost worker's rooms are
        dispatched again within about `livekit.lease_s` and a third."""
        while True:
            await asyncio.sleep(self._lk.lease_s / 3)
            try:
                sent = await self.reconcile()
            except LIVEKIT_UNREACHABLE as e:
                log.warning("dispatch reconciliation failed: %s", e)
                continue
            if sent:
                log.info("dispatched %d room session(s) again", len(sent))

    # -- notices from the workers ---------------------------------------------------------------

    async def listen(self) -> None:
        """Under the service's supervisor: returns (to be restarted) when the connection drops."""
        url = self._db.engine.url.render_as_string(hide_password=False)
        await notify.listen_forever(
            url, (notify.EVENTS, notify.ERASED, notify.ENDED), self._on_notice, self._caught_up
        )

    async def _caught_up(self) -> None:
        """After a (re)connection: what was stored while we were not listening goes out."""
        self._outbox.wake()
        for sid, last in list(self._published.items()):
            await self._publish(sid, last, None)

    async def _on_notice(self, channel: str, payload: str) -> None:
        if channel == notify.EVENTS:
            origin, sid, seq = payload.split(" ")
            if origin == notify.ORIGIN:
                return  # stored here, published here
            self._outbox.wake()
            if not self._hub.has(sid):
                self._published.pop(sid, None)
                return
            n = int(seq)
            await self._publish(sid, self._published.get(sid, n - 1), n)
        else:
            ack = self._acks.pop(f"{channel} {payload}", None)
            if ack is not None and not ack.done():
                ack.set_result(None)

    async def _publish(self, session_id: str, after: int, upto: int | None) -> None:
        """Hand the session's events after seq `after` (up to `upto`) to its connections, in
        order: a notice missed (a reconnection) leaves no gap, and one seen twice no repeat."""
        q = select(EventRow.seq, EventRow.body, EventRow.type).where(
            EventRow.session_id == session_id, EventRow.seq > after
        )
        if upto is not None:
            q = q.where(EventRow.seq <= upto)
        async with self._db.session() as s:
            rows = list(await s.execute(q.order_by(EventRow.seq)))
        last = after
        for seq, body, type_ in rows:  # erased since: nothing to send
            final = type_ == "session.summary"
            self._hub.publish(session_id, Outgoing(seq, body, final))
            if final:  # the connections close after it
                self._published.pop(session_id, None)
                return
            last = seq
        self._published[session_id] = max(last, upto if upto is not None else last)

    # -- asks of the workers ----------------------------------------------------------------------

    async def _ask(self, channel: str, answer: str, payload: str, timeout_s: float) -> bool:
        ack = asyncio.get_running_loop().create_future()
        self._acks[f"{answer} {payload}"] = ack
        async with self._db.transaction() as s:
            await notify.notify(s, channel, payload)
        try:
            await asyncio.wait_for(ack, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._acks.pop(f"{answer} {payload}", None)

    async def erase(self, session_id: str, user_id: str) -> None:
        """Returns once the worker holding the session has purged the person (or none does)."""
        if await self._held(session_id) and not await self._ask(
            notify.ERASE, notify.ERASED, f"{session_id} {user_id}", ACK_TIMEOUT_S
        ):
            log.warning("erasure not acknowledged by a worker", extra={"session_id": session_id})

    async def end(self, session_id: str) -> None:
        """End a running session: its worker emits the summary and stores the end; a session no
        worker holds now ends without one."""
        if await self._held(session_id):
            if await self._ask(notify.END, notify.ENDED, session_id, END_TIMEOUT_S):
                return
            log.warning("end not acknowledged by a worker", extra={"session_id": session_id})
        async with self._db.transaction() as s:
            await s.execute(
                update(Session)
                .where(Session.id == session_id, Session.status == "running")
                .values(status="ended", ended_at=datetime.now(UTC), worker=None, lease_until=None)
            )

    async def _held(self, session_id: str) -> bool:
        async with self._db.session() as s:
            row = await s.get(Session, session_id)
        return (
            row is not None
            and row.status == "running"
            and row.worker is not None
            and row.lease_until is not None
            and row.lease_until > datetime.now(UTC)
        )

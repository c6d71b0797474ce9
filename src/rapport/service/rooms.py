"""LiveKit rooms that have a rapport session, and the bot's life in them.

LiveKit's webhooks start the bot (room_started, participant_joined) and end it (room_finished).
Each is verified (JWT signed with the API secret, body hash) and acted on once: its id is stored,
so a replay or a re-delivery does nothing. LiveKit does not guarantee delivery, so the room service
is polled every `livekit.reconcile_s` and a room with people in it whose session has not started
gets its bot. A room's end needs no webhook: the bot in it is told (and ends the session) itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import aiohttp
from livekit import api
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from rapport.analytics.payloads import Reporting
from rapport.config import LiveKitSettings
from rapport.service.errors import ApiError
from rapport.service.runs import Runs, grant_of
from rapport.store.db import Database
from rapport.store.tables import Consent, LiveKitWebhook, Session

log = logging.getLogger(__name__)

LIVEKIT_UNREACHABLE = (api.TwirpError, aiohttp.ClientError, TimeoutError, OSError)
"""How the room service fails while LiveKit is down or restarting: retried at the next poll."""

MAX_WEBHOOK_AGE_S = 600
"""An event older than this is refused: ids are kept only as long as `retention.days`, and a
genuine delivery arrives within seconds."""


def bot_token(settings: LiveKitSettings, room: str) -> str:
    """Hidden, subscribe-only, and an agent: it never keeps an otherwise empty room open."""
    assert settings.api_key and settings.api_secret
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=False,
        can_publish_data=False,
        can_subscribe=True,
        hidden=True,
        agent=True,
    )
    return (
        api.AccessToken(settings.api_key, settings.api_secret)
        .with_identity(settings.identity)
        .with_name("rapport")
        .with_grants(grants)
        .with_ttl(timedelta(minutes=10))
        .to_jwt()
    )


class Rooms:
    def __init__(self, settings: LiveKitSettings, db: Database, runs: Runs) -> None:
        assert settings.url and settings.api_key and settings.api_secret
        self._settings = settings
        self._db = db
        self._runs = runs
        self._receiver = api.WebhookReceiver(
            api.TokenVerifier(settings.api_key, settings.api_secret)
        )
        self._active: dict[str, str] = {}  # room -> session id with a bot in it
        self._lock = asyncio.Lock()

    # -- webhooks ---------------------------------------------------------------------------------

    def verify(self, body: str, authorization: str) -> api.WebhookEvent:
        try:
            event = self._receiver.receive(body, authorization.removeprefix("Bearer "))
        except Exception as e:  # the SDK raises bare Exceptions and jwt errors alike
            raise ApiError(401, "unauthorized", f"LiveKit webhook refused: {e}") from e
        if not event.id:
            raise ApiError(422, "invalid_request", "LiveKit webhook without an event id")
        if event.created_at and time.time() - event.created_at > MAX_WEBHOOK_AGE_S:
            raise ApiError(409, "stale_event", f"LiveKit event {event.id} is too old to act on")
        return event

    async def handle(self, event: api.WebhookEvent) -> str:
        """Act on a verified event once; returns what was done."""
        try:
            async with self._db.transaction() as s:
                s.add(
                    LiveKitWebhook(
                        id=event.id,
                        event=event.event,
                        room=event.room.name or None,
                        received_at=datetime.now(UTC),
                    )
                )
        except IntegrityError as e:
            raise ApiError(409, "duplicate_event", f"LiveKit event {event.id} was seen") from e
        room = event.room.name
        if event.event in ("room_started", "participant_joined") and room:
            if event.event == "participant_joined" and (
                event.participant.identity == self._settings.identity
            ):
                return "ignored"
            return "started" if await self.room_active(room) else "ignored"
        if event.event == "room_finished" and room:
            return "ended" if await self.room_ended(room) else "ignored"
        return "ignored"

    # -- the bot's life --------------------------------------------------------------------------

    async def room_active(self, room: str) -> bool:
        """Start the bot for `room` if it has a session not yet started; True when it did."""
        async with self._lock:
            current = self._active.get(room)
            if current is not None and self._runs.get(current) is not None:
                return False
            async with self._db.transaction() as s:
                row = await s.scalar(
                    select(Session)
                    .where(
                        Session.source_kind == "room",
                        Session.source == room,
                        Session.status == "created",
                    )
                    .order_by(Session.created_at.desc())
                    .limit(1)
                )
                if row is None:
                    return False
                # Conditional, so that of several workers told of the room only one takes it.
                claimed = await s.execute(
                    update(Session)
                    .where(Session.id == row.id, Session.status == "created")
                    .values(status="running", started_at=datetime.now(UTC))
                )
                if getattr(claimed, "rowcount", 0) != 1:
                    return False
                consents = await s.scalars(
                    select(Consent).where(
                        Consent.session_id == row.id, Consent.revoked_at.is_(None)
                    )
                )
                grants = [grant_of(c) for c in consents]
                session_id = row.id
                reporting: Reporting = "participant" if row.reporting == "participant" else "room"
            run = self._runs.open(session_id, grants)
            assert self._settings.url
            self._runs.start_room(
                run,
                url=self._settings.url,
                token=lambda: bot_token(self._settings, room),
                reporting=reporting,
            )
            self._active[room] = session_id
            log.info("bot joining room", extra={"session_id": session_id})
            return True

    async def room_ended(self, room: str) -> bool:
        session_id = self._active.pop(room, None)
        if session_id is None or self._runs.get(session_id) is None:
            return False
        await self._runs.stop(session_id)
        return True

    # -- repair ------------------------------------------------------------------------------------

    async def reconcile(self) -> list[str]:
        """Start the bot in every listed room with people in it and a session not yet started
        (a lost room_started webhook); returns the rooms joined."""
        async with self._db.session() as s:
            waiting = set(
                await s.scalars(
                    select(Session.source).where(
                        Session.source_kind == "room", Session.status == "created"
                    )
                )
            )
        if not waiting:
            return []
        joined = []
        async with api.LiveKitAPI(
            self._settings.url, self._settings.api_key, self._settings.api_secret
        ) as lk:
            rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=sorted(waiting)))
            for room in rooms.rooms:
                people = await lk.room.list_participants(
                    api.ListParticipantsRequest(room=room.name)
                )
                someone = any(p.identity != self._settings.identity for p in people.participants)
                if someone and await self.room_active(room.name):
                    joined.append(room.name)
        return joined

    async def reconcile_forever(self) -> None:
        """Runs under the service's supervisor: an unexpected error (the database, a bug) ends
        it, to be logged, shown in /healthz and restarted; LiveKit being unreachable does not."""
        while True:
            await asyncio.sleep(self._settings.reconcile_s)
            try:
                joined = await self.reconcile()
            except LIVEKIT_UNREACHABLE as e:  # the server may be down or restarting
                log.warning("room reconciliation failed: %s", e, extra={"error": type(e).__name__})
                continue
            if joined:
                log.warning("joined %d room(s) whose webhook was lost", len(joined))

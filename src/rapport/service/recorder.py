"""Where a session's events go in the service: stored, queued for every matching webhook endpoint
of the session's project in the same transaction (the outbox), then fanned out to the WebSocket
connections."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from rapport.events.schema import Event, EventType
from rapport.events.webhooks import PENDING, Outbox, now
from rapport.events.websocket import EventHub, Outgoing
from rapport.metrics import EVENT_LAG
from rapport.store.db import Database
from rapport.store.leases import fence
from rapport.store.notify import EVENTS, ORIGIN, notify
from rapport.store.tables import Event as EventRow
from rapport.store.tables import Session, WebhookEndpoint, WebhookMessage

_PUBLISHED = EVENT_LAG.labels("published")
"""From emitted_at to stored and queued to the WebSocket connections."""


class Recorder:
    def __init__(self, db: Database, hub: EventHub, outbox: Outbox) -> None:
        self._db, self._hub, self._outbox = db, hub, outbox

    async def record(self, event: Event, epoch: int | None = None) -> None:
        await self.record_all([event], epoch)

    async def record_all(self, events: list[Event], epoch: int | None = None) -> None:
        """Store events of one session in one transaction: all or none (a window's
        engagement.window and turns.window go together). `epoch`: a worker's claim on the
        session (see store/leases.py); they are stored only while the claim is still its own,
        else Fenced is raised and nothing is written."""
        bodies = [e.to_json() for e in events]
        t = now()
        async with self._db.transaction() as s:
            if epoch is not None:
                await fence(s, events, epoch)
            project = select(Session.project).where(Session.id == events[0].session_id)
            endpoints = list(
                await s.scalars(
                    select(WebhookEndpoint).where(
                        WebhookEndpoint.disabled_at.is_(None),
                        WebhookEndpoint.project == project.scalar_subquery(),
                    )
                )
            )
            for event, body in zip(events, bodies, strict=True):
                s.add(
                    EventRow(
                        session_id=event.session_id,
                        seq=event.seq,
                        id=event.id,
                        type=str(event.type),
                        body=body,
                        created_at=t,
                    )
                )
                for ep in endpoints:
                    if ep.event_types and str(event.type) not in ep.event_types:
                        continue
                    s.add(
                        WebhookMessage(
                            id=f"msg_{uuid.uuid4().hex}",
                            endpoint_id=ep.id,
                            session_id=event.session_id,
                            event_id=event.id,
                            event_type=str(event.type),
                            body=body,
                            status=PENDING,
                            attempts=0,
                            next_attempt_at=t,
                            created_at=t,
                        )
                    )
                await notify(s, EVENTS, f"{ORIGIN} {event.session_id} {event.seq}")
        for event, body in zip(events, bodies, strict=True):
            final = event.type == EventType.SESSION_SUMMARY
            self._hub.publish(event.session_id, Outgoing(event.seq, body, final))
            _PUBLISHED.observe((now() - event.emitted_at).total_seconds())
        self._outbox.wake()

"""Fan-out of a session's events to its WebSocket connections, each behind a bounded queue.

`publish` never waits: a connection whose queue is full is cut off (its `cut` is set and the
route closes it with CLOSE_TOO_SLOW), so one slow consumer neither slows the others nor grows
memory. Events are serialised once and shared by every connection. The subscribed connections
are a gauge (rapport/metrics.py).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from rapport.metrics import WEBSOCKET_CONNECTIONS

CLOSE_TOO_SLOW = 4408
"""Close code for a consumer that fell `websocket.queue_size` events behind; it may resume."""
CLOSE_KEY_REVOKED = 4401
"""Close code for a connection whose API key (or the key that minted its token) was revoked."""


@dataclass(slots=True, frozen=True)
class Outgoing:
    seq: int
    body: str
    final: bool
    """The session's last event (its summary): the connection closes after it."""


@dataclass(slots=True, eq=False)
class Subscription:
    session_id: str
    queue: asyncio.Queue[Outgoing]
    key_id: str | None = None
    """The API key the connection was authorised by (directly or through a token)."""
    cut: asyncio.Event = field(default_factory=asyncio.Event)
    revoked: asyncio.Event = field(default_factory=asyncio.Event)


class EventHub:
    def __init__(self, queue_size: int) -> None:
        self._queue_size = queue_size
        self._subs: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, session_id: str, key_id: str | None = None) -> Subscription:
        sub = Subscription(session_id, asyncio.Queue(self._queue_size), key_id)
        self._subs[session_id].add(sub)
        WEBSOCKET_CONNECTIONS.inc()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Idempotent: a connection cut off here is unsubscribed again by its route."""
        subs = self._subs.get(sub.session_id)
        if subs is not None and sub in subs:
            subs.discard(sub)
            WEBSOCKET_CONNECTIONS.dec()
            if not subs:
                del self._subs[sub.session_id]

    def has(self, session_id: str) -> bool:
        """Whether any connection waits for this session's events."""
        return session_id in self._subs

    def publish(self, session_id: str, item: Outgoing) -> None:
        for sub in list(self._subs.get(session_id, ())):
            if sub.cut.is_set():
                continue
            try:
                sub.queue.put_nowait(item)
            except asyncio.QueueFull:
                sub.cut.set()
                self.unsubscribe(sub)

    def revoke_keys(self, key_ids: set[str]) -> int:
        """Marks every connection authorised by one of these keys; returns how many."""
        hit = 0
        for subs in self._subs.values():
            for sub in subs:
                if sub.key_id in key_ids and not sub.revoked.is_set():
                    sub.revoked.set()
                    hit += 1
        return hit

    def connections(self, session_id: str) -> int:
        return len(self._subs.get(session_id, ()))

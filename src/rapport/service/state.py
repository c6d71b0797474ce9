"""What the routes share, built once in the app's lifespan (models load there, never at import)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, WebSocket

from rapport.config import Settings
from rapport.consent.store import ConsentLog
from rapport.events.webhooks import Outbox
from rapport.events.websocket import EventHub
from rapport.pack import OfflinePack
from rapport.service.auth import KeyCache, Tokens
from rapport.service.fleet import Fleet
from rapport.service.recorder import Recorder
from rapport.service.rooms import Rooms
from rapport.service.runs import Runs
from rapport.service.supervise import Supervisor
from rapport.store.db import Database


@dataclass(slots=True)
class State:
    settings: Settings
    db: Database
    consents: ConsentLog
    tokens: Tokens
    keys: KeyCache
    hub: EventHub
    outbox: Outbox
    recorder: Recorder
    runs: Runs
    loops: Supervisor
    """The background loops (webhooks, retention, rooms), restarted when they fail."""
    fleet: Fleet | None = None
    """Workers under LiveKit's agent dispatch run the rooms (livekit.agent_name set)."""
    rooms: Rooms | None = None
    """LiveKit rooms (None when no LiveKit server is configured)."""
    pack: OfflinePack | None = None
    """The models every session shares (loaded in the lifespan; /readyz checks them)."""


def state(request: Request) -> State:
    s: State = request.app.state.rapport
    return s


def ws_state(websocket: WebSocket) -> State:
    s: State = websocket.app.state.rapport
    return s

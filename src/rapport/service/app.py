"""The FastAPI application. Everything heavy (database migrations, signing keys, models) is set
up in the lifespan, never at import; background loops (webhook delivery, retention, room repair)
run under the lifespan's supervisor (service/supervise.py), which restarts a loop that fails and
reports it in /healthz and /readyz, and they stop with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy import update

from rapport import NOTICE, __version__
from rapport.config import Settings
from rapport.consent.records import KeyRing
from rapport.consent.store import ConsentLog
from rapport.errors import InputError
from rapport.events.ssrf import resolver_for
from rapport.events.webhooks import Outbox
from rapport.events.websocket import EventHub
from rapport.pack import load_pack
from rapport.service import errors, openapi
from rapport.service.auth import KeyCache, Tokens, close_revoked_forever
from rapport.service.fleet import Fleet
from rapport.service.limits import RequestLimits
from rapport.service.recorder import Recorder
from rapport.service.retention import purge_forever
from rapport.service.rooms import Rooms
from rapport.service.routes import (
    consents,
    dashboard,
    events,
    keys,
    livekit,
    meta,
    ops,
    sessions,
    webhooks,
)
from rapport.service.runs import Runs
from rapport.service.state import State
from rapport.service.supervise import Backoff, Supervisor
from rapport.store.db import Database, database_url
from rapport.store.tables import Session

RESTART_BACKOFF = Backoff(initial_s=1.0, factor=2.0, max_s=30.0, healthy_s=60.0)
"""A failed background loop restarts after 1, 2, 4 ... 30 s: soon after a database blip, and
without hammering a database that is down for longer."""


async def open_database(settings: Settings) -> Database:
    data_dir = settings.service.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(database_url(settings.service.database_url, data_dir))
    await db.migrate()
    return db


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await open_database(settings)
        data_dir = settings.service.data_dir
        keys = KeyRing.load_or_create(data_dir / "keys")  # the newest key signs
        tokens = Tokens.load_or_create(data_dir, settings.service.token_ttl_s)
        pack = await asyncio.to_thread(load_pack, settings)
        hub = EventHub(settings.websocket.queue_size)
        outbox = Outbox(
            db, settings.webhooks, resolve=resolver_for(settings.webhooks.resolve_table)
        )
        recorder = Recorder(db, hub, outbox)

        async def finished(
            session_id: str, status: str, error: str | None, counts: dict[str, Any]
        ) -> None:
            async with db.transaction() as s:
                row = await s.get(Session, session_id)
                if row is not None:
                    row.status, row.error, row.counts = status, error, counts
                    row.ended_at = datetime.now(UTC)

        fleet = None
        if settings.livekit.agent_name:  # workers run the rooms: their sessions stay theirs
            if db.engine.dialect.name != "postgresql":
                raise InputError(
                    "livekit.agent_name: workers share the API's state in PostgreSQL; set "
                    "service.database_url to a postgresql+asyncpg:// URL"
                )
            fleet = Fleet(settings, db, hub, outbox)
        # Sessions a previous process was running when it died cannot resume from a recording.
        interrupted = Session.status == "running"
        if fleet is not None:
            interrupted &= Session.source_kind != "room"
        async with db.transaction() as s:
            await s.execute(
                update(Session)
                .where(interrupted)
                .values(status="interrupted", ended_at=datetime.now(UTC))
            )
        runs = Runs(settings, pack, recorder, finished)
        st = State(
            settings=settings,
            db=db,
            consents=ConsentLog(db, keys),
            tokens=tokens,
            keys=KeyCache(db, settings.service.key_check_s),
            hub=hub,
            outbox=outbox,
            recorder=recorder,
            runs=runs,
            loops=Supervisor(RESTART_BACKOFF),
            rooms=Rooms(settings.livekit, db, runs)
            if settings.livekit.url and fleet is None
            else None,
            fleet=fleet,
            pack=pack,
        )
        app.state.rapport = st
        loops = st.loops
        loops.start("webhooks", outbox.run)
        if st.rooms is not None:
            loops.start("rooms", st.rooms.reconcile_forever)
        if fleet is not None:
            loops.start("dispatch", fleet.reconcile_forever)
            loops.start("notices", fleet.listen)
        loops.start("keys", lambda: close_revoked_forever(db, hub, settings.service.key_check_s))
        days, every = settings.retention.days, settings.retention.purge_interval_s
        loops.start("retention", lambda: purge_forever(db, days, every))
        try:
            yield
        finally:
            await st.runs.shutdown()  # first: ending sessions still write to the outbox
            await loops.aclose()
            await db.close()
            pack.close()

    app = FastAPI(
        title="rapport",
        version=__version__,
        description="Aggregate engagement and sentiment signals for video calls, consent first. "
        + NOTICE,
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.service.max_body_bytes,
        max_header_bytes=settings.service.max_header_bytes,
    )
    for module in (ops, meta, keys, consents, sessions, webhooks, events, livekit, dashboard):
        app.include_router(module.router)
    openapi.install(app)
    return app

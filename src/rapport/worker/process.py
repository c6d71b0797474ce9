"""`rapport worker`: one agent worker process. It registers with LiveKit's agent dispatch, runs the
room sessions it is given from the PostgreSQL database it shares with the API, and listens there
for consent changes. SIGTERM (or SIGINT) drains it: no new jobs, every session is handed over
(its open windows go out, the API dispatches it again for another worker), then the process exits
0; jobs still running after `drain_s` are terminated."""

from __future__ import annotations

import asyncio
import logging
import signal

from rapport.config import Settings
from rapport.errors import InputError
from rapport.pack import load_pack
from rapport.store.db import Database
from rapport.worker.agent import AgentWorker
from rapport.worker.sessions import SessionHost

log = logging.getLogger(__name__)

LISTEN_RETRY_S = 1.0
"""After the notification connection drops, listen again this soon (then resynchronise)."""


def run_worker(settings: Settings, *, agent_name: str, max_jobs: int, drain_s: float) -> int:
    """Serves until a signal has drained it; returns the exit status."""
    lk = settings.livekit
    if not (lk.url and lk.api_key and lk.api_secret):
        raise InputError("rapport worker needs --url, --api-key and --api-secret")
    url = settings.service.database_url
    if not url or not url.startswith("postgresql"):
        raise InputError(
            "rapport worker needs the API's PostgreSQL database: set service.database_url "
            "(RAPPORT_SERVICE__DATABASE_URL=postgresql+asyncpg://...)"
        )
    asyncio.run(_serve(settings, url, agent_name=agent_name, max_jobs=max_jobs, drain_s=drain_s))
    return 0


async def _serve(
    settings: Settings, url: str, *, agent_name: str, max_jobs: int, drain_s: float
) -> None:
    lk = settings.livekit
    assert lk.url and lk.api_key and lk.api_secret
    db = Database(url)
    await db.migrate()  # one process at a time (an advisory lock); a no-op at head
    pack = await asyncio.to_thread(load_pack, settings)
    host = SessionHost(settings, db, pack)
    worker = AgentWorker(
        url=lk.url,
        api_key=lk.api_key,
        api_secret=lk.api_secret,
        run_job=host.run_job,
        agent_name=agent_name,
        max_jobs=max_jobs,
    )
    log.info("worker ready", extra={"worker": host.name, "agent_name": agent_name})
    loop = asyncio.get_running_loop()
    draining: list[asyncio.Task[bool]] = []
    handing_over: list[asyncio.Task[None]] = []

    def stop(signum: int) -> None:
        if not draining:
            log.info("signal received: draining", extra={"signal": signal.Signals(signum).name})
            draining.append(asyncio.create_task(worker.drain(drain_s)))
            handing_over.append(asyncio.create_task(_hand_over(host)))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    listening = asyncio.create_task(_listen_forever(host))
    try:
        await worker.run()
        if draining:
            clean = await draining[0]
            log.info("agent worker stopped", extra={"clean": clean, "worker": host.name})
    finally:
        listening.cancel()
        for task in handing_over:
            await task
        await db.close()
        pack.close()


async def _hand_over(host: SessionHost) -> None:
    await asyncio.sleep(0)  # the drain has marked the worker full first: no job comes back here
    await host.suspend_all()


async def _listen_forever(host: SessionHost) -> None:
    while True:
        try:
            await host.listen()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the database restarted or the connection dropped
            log.warning("consent notices lost: listening again (%s)", type(e).__name__)
        await asyncio.sleep(LISTEN_RETRY_S)

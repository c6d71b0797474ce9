"""The room sessions a worker runs, from the database it shares with the API.

A job names a room (and, in its dispatch's metadata, the session). The worker claims the session
(store/leases.py), runs it as `rapport serve` would run its own bot (service/runs.py: the tap,
the live session, events stored with the webhook outbox in one transaction, under the claim's
epoch), renews its lease, and hears of consent changes through PostgreSQL notices
(store/notify.py): a grant or revocation recorded by any API process reaches the gate here within
a notice's delivery (milliseconds), and an erasure is applied and then acknowledged, so the API
deletes what was stored only once nothing more about the person can be written.

Ending: the room ends (the session ends, summary and all); the job is terminated or the worker
drains (the session is suspended: its open windows go out, the lease is released, and the API
dispatches the room again for another worker to resume); the lease is lost (Fenced: the session
stops writing at once, someone else holds it).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket

from sqlalchemy import select

from rapport.config import Settings
from rapport.events.ssrf import resolver_for
from rapport.events.webhooks import Outbox
from rapport.events.websocket import EventHub
from rapport.pack import OfflinePack
from rapport.service.recorder import Recorder
from rapport.service.runs import Resume, Run, Runs, grant_of
from rapport.store import leases, notify
from rapport.store.db import Database
from rapport.store.tables import Consent
from rapport.worker.jobs import JobInfo

log = logging.getLogger(__name__)

ERASE_ACK_TIMEOUT_S = 5.0


def worker_name() -> str:
    """This process among the workers (in the sessions table while it holds one)."""
    return f"{socket.gethostname()[:40]}-{secrets.token_hex(4)}"


class SessionHost:
    """Built on the worker's event loop (Runs hands events to it from session threads)."""

    def __init__(self, settings: Settings, db: Database, pack: OfflinePack) -> None:
        self._settings = settings
        self._db = db
        self.name = worker_name()
        self._lease_s = settings.livekit.lease_s
        outbox = Outbox(db, settings.webhooks, resolve=resolver_for(None))  # the API delivers
        self._recorder = Recorder(db, EventHub(1), outbox)
        self._runs = Runs(settings, pack, self._recorder, self._finished)
        self._claims: dict[str, leases.Claim] = {}

    async def run_job(self, job: JobInfo) -> None:
        claim = await leases.claim(
            self._db,
            session_id=job.metadata or None,
            room=job.room,
            worker=self.name,
            lease_s=self._lease_s,
        )
        if claim is None:
            log.info("no session to run in the room", extra={"job_id": job.job_id})
            return
        sid = claim.session_id
        self._claims[sid] = claim
        run = self._runs.open(sid, [grant_of(c) for c in claim.consents])
        run.epoch = claim.epoch
        resume = None
        if claim.resumed:
            resume = Resume(claim.next_seq, claim.media_time, claim.windows_end, claim.reason)
        self._runs.start_room(
            run,
            url=job.url,
            token=lambda: job.token,
            reporting="participant" if claim.reporting == "participant" else "room",
            resume=resume,
        )
        log.info(
            "session resumed" if resume else "session started",
            extra={"session_id": sid, "job_id": job.job_id, "epoch": claim.epoch},
        )
        renewing = asyncio.create_task(self._renew(run, claim))
        try:
            await asyncio.shield(run.done.wait())
        except asyncio.CancelledError:  # terminated, or drained: hand the session over
            await asyncio.shield(self._runs.suspend(sid))
            raise
        finally:
            renewing.cancel()
            self._claims.pop(sid, None)

    async def suspend_all(self) -> None:
        """Draining: every session goes out with its open windows, for another worker."""
        await asyncio.gather(*(self._runs.suspend(sid) for sid in list(self._claims)))

    async def _renew(self, run: Run, claim: leases.Claim) -> None:
        while not run.done.is_set():
            await asyncio.sleep(self._lease_s / 3)
            try:
                ours = await leases.renew(self._db, claim.session_id, claim.epoch, self._lease_s)
            except Exception:  # the database blinked: the next renewal may work
                log.warning("lease renewal failed", extra={"session_id": claim.session_id})
                continue
            if not ours:
                log.warning("session taken over: stopping", extra={"session_id": claim.session_id})
                await self._runs.suspend(claim.session_id)
                return

    async def _finished(
        self, session_id: str, status: str, error: str | None, counts: dict[str, object]
    ) -> None:
        claim = self._claims.get(session_id)
        if claim is None:
            return
        if status == "suspended":
            await leases.release(self._db, session_id, claim.epoch)
        elif not await leases.end(self._db, session_id, claim.epoch, status, error, counts):
            log.warning(
                "session ended here after another worker took it",
                extra={"session_id": session_id},
            )

    # -- notices from the API ---------------------------------------------------------------------

    async def listen(self) -> None:
        """Consent changes and erasures, until the connection drops (the caller restarts it)."""
        url = self._db.engine.url.render_as_string(hide_password=False)
        await notify.listen_forever(
            url, (notify.CONSENTS, notify.ERASE, notify.END), self._on_notice, self._resync_all
        )

    async def _resync_all(self) -> None:
        for sid in list(self._claims):
            await self._resync(sid)

    async def _on_notice(self, channel: str, payload: str) -> None:
        if channel == notify.CONSENTS:
            if payload in self._claims:
                await self._resync(payload)
        elif channel == notify.ERASE:
            sid, _, user = payload.partition(" ")
            if sid in self._claims:
                await self._runs.erase(sid, user)
                await self._answer(notify.ERASED, payload)
        elif channel == notify.END and payload in self._claims:
            await self._runs.stop(payload)  # the summary is out and the end stored after it
            await self._answer(notify.ENDED, payload)

    async def _answer(self, channel: str, payload: str) -> None:
        async with self._db.transaction() as s:
            await notify.notify(s, channel, payload)

    async def _resync(self, session_id: str) -> None:
        """Bring the gate in line with the session's consents as stored."""
        async with self._db.session() as s:
            rows = list(await s.scalars(select(Consent).where(Consent.session_id == session_id)))
        run = self._runs.get(session_id)
        stored = {c.user_id for c in rows}
        for user in set(run.gate.in_force()) - stored if run is not None else ():
            await self._runs.erase(session_id, user)  # their consents were erased
        for c in rows:
            if c.revoked_at is None:
                self._runs.grant(session_id, grant_of(c))
            else:
                await self._runs.revoke(session_id, c.user_id, c.id, c.revoked_at)
